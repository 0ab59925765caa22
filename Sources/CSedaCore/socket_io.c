/*
 * The socket layer's per-loop state (socket_internal.h): created on first
 * use on the loop's thread; its pools of events, buffers and output items
 * (allocated in slabs, kept at their high-water mark: no malloc per packet);
 * delivery of events into sinks, and waiting (in order, input paused) while
 * a sink is full; event release from any thread; statistics; and what
 * happens when the loop stops.
 *
 * Lifetime. The loop holds a reference on its state until it stops, and so
 * does every connection and listening socket alive; events hold their
 * connection. The state holds a reference on the runtime, so the loop's
 * memory (its inbox, its poller) outlives it. When the loop stops (io_stop,
 * on its thread), every socket is closed; loop.c then runs what was posted
 * and closes the inbox. From then on a release on another thread finds the
 * post refused and puts the event back in the pools under the state's lock
 * (the refused post's acquire orders it after everything the loop did).
  */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime_internal.h"
#include "socket_internal.h"

#define EVENTS_PER_SLAB 64
#define OUTS_PER_SLAB 64
#define BUFS_PER_SLAB 8

/* ---- pools -------------------------------------------------------------------- */

/* A slab: the header, then the items. Freed with the state. */
static void *slab_new(struct seda__io *io, size_t bytes)
{
    size_t head = (sizeof(struct seda__slab) + 63) & ~(size_t)63;
    struct seda__slab *s = aligned_alloc(64, (head + bytes + 63) & ~(size_t)63);
    if (!s)
        return NULL;
    s->next = io->slabs;
    io->slabs = s;
    return (char *)s + head;
}

void *seda__io_buf_get(struct seda__io *io)
{
    if (!io->free_bufs) {
        char *mem = slab_new(io, (size_t)BUFS_PER_SLAB * SEDA__IO_BUF_SIZE);
        if (!mem)
            return NULL;
        for (int i = BUFS_PER_SLAB - 1; i >= 0; i--) {
            void *b = mem + (size_t)i * SEDA__IO_BUF_SIZE;
            *(void **)b = io->free_bufs;
            io->free_bufs = b;
        }
    }
    void *b = io->free_bufs;
    io->free_bufs = *(void **)b;
    return b;
}

void seda__io_buf_put(struct seda__io *io, void *buf)
{
    *(void **)buf = io->free_bufs;
    io->free_bufs = buf;
}

struct seda__out *seda__io_out_get(struct seda__io *io)
{
    if (!io->free_outs) {
        struct seda__out *o = slab_new(io, OUTS_PER_SLAB * sizeof *o);
        if (!o)
            return NULL;
        for (int i = OUTS_PER_SLAB - 1; i >= 0; i--) {
            o[i].next = io->free_outs;
            io->free_outs = &o[i];
        }
    }
    struct seda__out *o = io->free_outs;
    io->free_outs = o->next;
    memset(o, 0, sizeof *o);
    return o;
}

void seda__io_out_put(struct seda__io *io, struct seda__out *o)
{
    o->next = io->free_outs;
    io->free_outs = o;
}

struct seda__io_event *seda__io_event_new(struct seda__io *io, uint32_t type, seda_conn_t *c)
{
    if (!io->free_events) {
        struct seda__io_event *e = slab_new(io, EVENTS_PER_SLAB * sizeof *e);
        if (!e)
            return NULL;
        for (int i = EVENTS_PER_SLAB - 1; i >= 0; i--) {
            e[i].next = io->free_events;
            io->free_events = &e[i];
        }
    }
    struct seda__io_event *ev = io->free_events;
    io->free_events = ev->next;
    memset(&ev->pub, 0, sizeof ev->pub);
    ev->pub.type = type;
    ev->pub.conn = c;
    ev->io = io;
    ev->next = NULL;
    ev->dest = NULL;
    ev->hold = c;
    ev->buf = NULL;
    ev->ring_id = -1;
    if (c)
        seda_conn_retain(c);
    return ev;
}

/* Puts ev back in its pool: the buffer first. Returns the references ev
 * held, for the caller to drop (after any lock it holds). Owner, or under
 * the lock once stopped. */
static void recycle(struct seda__io *io, struct seda__io_event *ev, seda_conn_t **conn,
                    seda_listener_t **ls)
{
    if (ev->buf) {
        seda__io_buf_put(io, ev->buf);
        io->read_bufs_out--;
        /* A connection waits for a buffer: serve it at the next poll, which
         * must not block (its input signalled once, long ago). */
        if (io->starved_head && !io->stopped)
            io->loop->io_more = true;
    } else if (ev->ring_id >= 0 && !io->stopped) {
        /* After the stop the poller may be gone: the ring goes with it. */
        io->uring->buffer_put(io->loop->poller, io->ring, (uint16_t)ev->ring_id);
    }
    *conn = ev->hold;
    *ls = ev->pub.listener;
    ev->buf = NULL;
    ev->ring_id = -1;
    ev->hold = NULL;
    ev->next = io->free_events;
    io->free_events = ev;
}

static void drop_refs(seda_conn_t *c, seda_listener_t *ls)
{
    if (ls)
        seda_listener_release(ls);
    if (c)
        seda_conn_release(c);
}

/* The owner's release of an event (also a posted release). */
static void release_owned(struct seda__io *io, struct seda__io_event *ev)
{
    seda_conn_t *c;
    seda_listener_t *ls;
    /* The application is done with READ_EOF (and so with the packets before
     * it): a connection that does not allow half-closure closes now, after
     * its flush. */
    if (ev->pub.type == SEDA_IO_READ_EOF && ev->hold && !ev->hold->o.half_close && !io->stopped)
        seda__conn_close_after_flush(ev->hold);
    if (io->stopped) { /* the final inbox run after the stop */
        pthread_mutex_lock(&io->lock);
        recycle(io, ev, &c, &ls);
        pthread_mutex_unlock(&io->lock);
    } else {
        recycle(io, ev, &c, &ls);
    }
    drop_refs(c, ls);
}

static void release_task(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    struct seda__io_event *ev =
        (struct seda__io_event *)((char *)t - offsetof(struct seda__io_event, task));
    release_owned(ev->io, ev);
}

void seda_io_event_release(seda_io_event_t *pub)
{
    if (!pub)
        return;
    struct seda__io_event *ev = seda__io_event_of(pub);
    struct seda__io *io = ev->io;
    if (seda__loop_current() == io->loop) {
        release_owned(io, ev);
        return;
    }
    /* Another thread: hand it to the owner. A post that succeeds always
     * runs (during the loop's exit at the latest). */
    ev->task.run = release_task;
    if (seda__loop_post(io->loop, &ev->task))
        return;
    /* The loop has exited: other releasing threads share the pools now. */
    seda_conn_t *c;
    seda_listener_t *ls;
    pthread_mutex_lock(&io->lock);
    recycle(io, ev, &c, &ls);
    pthread_mutex_unlock(&io->lock);
    drop_refs(c, ls);
}

const char *seda_io_event_name(uint32_t type)
{
    static const char *const names[] = {
        [SEDA_IO_ACCEPTED] = "ACCEPTED",     [SEDA_IO_PACKET] = "PACKET",
        [SEDA_IO_READ_EOF] = "READ_EOF",     [SEDA_IO_CLOSED] = "CLOSED",
        [SEDA_IO_CONNECTED] = "CONNECTED",   [SEDA_IO_CONNECT_FAILED] = "CONNECT_FAILED",
        [SEDA_IO_WRITABLE] = "WRITABLE",     [SEDA_IO_UNWRITABLE] = "UNWRITABLE",
        [SEDA_IO_WRITE_DONE] = "WRITE_DONE", [SEDA_IO_CLOGGED] = "CLOGGED",
    };
    return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}

/* ---- delivery ------------------------------------------------------------------ */

/* Tries to hand ev to its sink. true: consumed (enqueued, or released
 * because the sink is closed); false: the sink is full or not set yet. */
static bool try_send(seda_conn_t *c, struct seda__io_event *ev)
{
    seda_stage_t *dest = ev->dest ? ev->dest : c->sink;
    if (!dest)
        return false;
    int r = seda_stage_enqueue(dest, &ev->pub);
    if (r == 0)
        return true;
    if (r == -EAGAIN)
        return false;
    /* The sink is gone (destroyed, or the runtime stops): nobody can take
     * this connection's events any more. */
    release_owned(c->io, ev);
    if (!(c->flags & SEDA__C_CLOSED))
        seda__conn_close_now(c, -EPIPE);
    return true;
}

static void stall_arm(struct seda__io *io)
{
    if (io->stall_timer.id == 0)
        seda__loop_timer_start(io->loop, &io->stall_timer,
                               seda__io_now(io) + SEDA__IO_STALL_RETRY_NS);
}

/* Events about output: they need not wait behind held input. */
static inline bool is_output(uint32_t type)
{
    return type == SEDA_IO_WRITABLE || type == SEDA_IO_UNWRITABLE || type == SEDA_IO_CLOGGED ||
           type == SEDA_IO_WRITE_DONE;
}

void seda__conn_hold(seda_conn_t *c, struct seda__io_event *ev)
{
    if (is_output(ev->pub.type))
        c->pend_out++;
    ev->next = NULL;
    if (c->pend_tail)
        c->pend_tail->next = ev;
    else
        c->pend_head = ev;
    c->pend_tail = ev;
}

void seda__conn_stall(seda_conn_t *c)
{
    struct seda__io *io = c->io;
    if (!(c->flags & SEDA__C_STALL_LISTED)) {
        c->flags |= SEDA__C_STALL_LISTED;
        seda_conn_retain(c); /* the list's */
        c->stall_next = io->stalled;
        io->stalled = c;
        seda__io_count(&io->st->stalls, 1);
        stall_arm(io);
    }
    if (!(c->flags & SEDA__C_STALLED)) {
        c->flags |= SEDA__C_STALLED; /* input waits until the sink takes these */
        seda__conn_input_update(c);
    }
}

void seda__conn_deliver(seda_conn_t *c, struct seda__io_event *ev)
{
    /* In order behind what is held; but output events pass held input (a
     * handler that stopped reading until WRITABLE must get WRITABLE), in
     * order among themselves. */
    bool tried = !c->pend_head || (c->pend_out == 0 && is_output(ev->pub.type));
    if (tried && try_send(c, ev))
        return;
    seda__conn_hold(c, ev);
    /* Held behind packets held for the budget (not refused by a full sink):
     * the ready list delivers it (once closed, all of it, reading or not).
     * One the sink refused waits on the stalled list, which retries it
     * whatever the reading state: the ready list serves a connection only
     * while it reads, and a handler that stopped reading on UNWRITABLE
     * waits for this WRITABLE to read again. */
    if (!tried && (c->flags & SEDA__C_BUDGET) && !(c->flags & SEDA__C_STALLED)) {
        if (c->flags & SEDA__C_CLOSED)
            seda__conn_ready_push(c);
        return;
    }
    seda__conn_stall(c);
}

int seda__conn_deliver_pending(seda_conn_t *c, uint32_t max_packets)
{
    while (c->pend_head) {
        struct seda__io_event *ev = c->pend_head;
        if (ev->pub.type == SEDA_IO_PACKET) {
            if (max_packets == 0)
                return SEDA__PEND_BUDGET;
            max_packets--;
        }
        c->pend_head = ev->next;
        if (!c->pend_head)
            c->pend_tail = NULL;
        bool out = is_output(ev->pub.type);
        if (!try_send(c, ev)) {
            ev->next = c->pend_head; /* back in front */
            c->pend_head = ev;
            if (!c->pend_tail)
                c->pend_tail = ev;
            return SEDA__PEND_FULL;
        }
        if (out)
            c->pend_out--;
    }
    return SEDA__PEND_EMPTY;
}

/* Retries every stalled connection. */
static void retry_stalled(struct seda__io *io)
{
    seda_conn_t **link = &io->stalled;
    while (*link) {
        seda_conn_t *c = *link;
        if (seda__conn_deliver_pending(c, UINT32_MAX) != SEDA__PEND_EMPTY) {
            link = &c->stall_next;
            continue;
        }
        *link = c->stall_next;
        /* Everything held went, budget or not: input may go on. */
        c->flags &= ~(SEDA__C_STALL_LISTED | SEDA__C_STALLED | SEDA__C_BUDGET);
        seda__conn_input_update(c);
        seda_conn_release(c); /* the list's */
    }
}

static void stall_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled)
{
    (void)l;
    struct seda__io *io = (struct seda__io *)((char *)t - offsetof(struct seda__io, stall_timer));
    if (cancelled)
        return;
    retry_stalled(io);
    if (io->stalled)
        stall_arm(io);
}

/* ---- the loop's hooks ------------------------------------------------------------ */

int64_t seda__io_now(struct seda__io *io)
{
    return io->now;
}

void seda__io_read_clock(struct seda__io *io)
{
    io->now_wait = io->loop->waits;
    io->now = seda__clock_now_fast(io->loop->rt->clock);
}

static void io_poll(struct seda__loop *l)
{
    struct seda__io *io = atomic_load_explicit(&l->io, memory_order_relaxed);
    seda__io_clock(io);
    io->polls++;
    l->io_more = false;
    if (io->stalled)
        retry_stalled(io);
    seda__io_serve_ready(io);
}

static void io_stop(struct seda__loop *l)
{
    struct seda__io *io = atomic_load_explicit(&l->io, memory_order_relaxed);
    seda__listen_stop_loop(io);
    /* Close every connection: queued output is dropped (release callbacks
     * get -EPIPE), CLOSED goes to sinks that are closed by now, so it is
     * released at once. */
    while (io->conns)
        seda__conn_close_now(io->conns, -EPIPE);
    /* io_uring: receives and sends of closed connections end with a last
     * completion, which frees what they hold; wait for them (bounded: the
     * sockets are shut down, so they end at once). */
    int64_t deadline = seda__now_ns() + 1000000000;
    seda_poller_event_t ev[64];
    while (io->finishing > 0 && seda__now_ns() < deadline)
        seda__poller_wait_once(l->poller, ev, 64, 10000000);
    /* Events still waiting for full sinks: the sinks are closed now. */
    retry_stalled(io);
    seda__loop_timer_stop(l, &io->stall_timer);
    /* Connections on the ready and starved lists are closed: let go. */
    seda__io_serve_ready(io);
    pthread_mutex_lock(&io->lock); /* for the releases of the final inbox run */
    io->stopped = true;
    pthread_mutex_unlock(&io->lock);
    l->io_poll = NULL;
    seda__io_unref(io); /* the loop's */
}

void seda__io_ref(struct seda__io *io)
{
    atomic_fetch_add_explicit(&io->refs, 1, memory_order_relaxed);
}

void seda__io_unref(struct seda__io *io)
{
    /* acq_rel: the last one sees every other holder's writes to the pools. */
    if (atomic_fetch_sub_explicit(&io->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct seda__loop *l = io->loop;
    while (io->slabs) {
        struct seda__slab *s = io->slabs;
        io->slabs = s->next;
        free(s);
    }
    pthread_mutex_destroy(&io->lock);
    atomic_store_explicit(&l->io, NULL, memory_order_relaxed);
    seda_runtime_t *rt = l->rt;
    free(io);
    seda__runtime_release(rt); /* the state's: the loop may go now */
}

struct seda__io *seda__io_peek(const struct seda__loop *l)
{
    /* Acquire: pairs with the release store in seda__io_get. */
    return atomic_load_explicit(&((struct seda__loop *)l)->io, memory_order_acquire);
}

struct seda__io *seda__io_get(struct seda__loop *l)
{
    struct seda__io *io = atomic_load_explicit(&l->io, memory_order_relaxed);
    if (SEDA__LIKELY(io != NULL))
        return io;
    if (l->exiting)
        return NULL; /* too late: nothing new once the loop has stopped */
    io = seda__alloc_aligned(sizeof *io);
    if (!io)
        return NULL;
    io->loop = l;
    io->st = &l->io_st;
    atomic_init(&io->refs, 1);
    pthread_mutex_init(&io->lock, NULL);
    io->edge = l->trigger == SEDA_POLLER_EDGE;
    io->stall_timer.fire = stall_fire;
    seda__io_read_clock(io);
    if (l->completion && l->completion->bufring_create(l->poller, SEDA__IO_RING_BUFS,
                                                       SEDA__IO_BUF_SIZE, &io->ring) == 0)
        io->uring = l->completion;
    /* A send to a reset peer must not kill the process: sendmsg passes
     * MSG_NOSIGNAL, but sendfile(2) has no such flag, so this thread
     * blocks SIGPIPE (a thread-directed SIGPIPE then stays pending,
     * harmless; socket_write.c consumes it). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    atomic_fetch_add_explicit(&l->rt->refs, 1, memory_order_relaxed); /* the state's */
    l->io_poll = io_poll;
    l->io_stop = io_stop;
    /* Release: statistics readers on other threads see an initialised state. */
    atomic_store_explicit(&l->io, io, memory_order_release);
    return io;
}

/* ---- logging and statistics -------------------------------------------------------- */

void seda__io_log(seda_io_log_fn fn, void *ctx, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (fn)
        fn(ctx, line);
    else
        fprintf(stderr, "seda: %s\n", line);
}

int seda_runtime_io_stats(const seda_runtime_t *rt, uint32_t i, seda_io_stats_t *out)
{
    if (!rt || !out || i >= seda_runtime_cpu_threads(rt))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    /* The loop's counters (zero before any socket work there), never the
     * socket state, which another thread may be freeing. */
    const struct seda__io_counters *c = &seda__loop_of((seda_runtime_t *)rt, i)->io_st;
#define LOAD(f) out->f = atomic_load_explicit(&c->f, memory_order_relaxed)
    LOAD(accepted);
    LOAD(refused);
    LOAD(emfile_episodes);
    LOAD(connects);
    LOAD(connect_failed);
    LOAD(connections_open);
    LOAD(packets_in);
    LOAD(bytes_in);
    LOAD(bytes_out);
    LOAD(reads);
    LOAD(writes);
    LOAD(timeouts);
    LOAD(clogged);
    LOAD(stalls);
#undef LOAD
    return 0;
}
