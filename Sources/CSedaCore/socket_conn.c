/*
 * A connection's life (socket_internal.h): creation, setup on its loop,
 * references, the readiness and completion dispatch, calls from other
 * threads (posted, in order), closing now or after the output is flushed,
 * and the idle timeout.
 *
 * Idle timeout without a timer operation per request: activity stores a new
 * deadline in the connection (seda__conn_touch); the connection's one loop
 * timer fires at the deadline it was armed for, finds the deadline moved,
 * and re-arms once for the new one. A busy connection pays one store per
 * packet and one timer re-arm per timeout period.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime_internal.h"
#include "socket_internal.h"

#define DEFAULT_HIGH (64u * 1024)
#define DEFAULT_LOW (32u * 1024)
#define DEFAULT_HARD (1024u * 1024)

static _Atomic uint64_t next_conn_id;

int seda__conn_options_resolve(const seda_conn_options_t *in, seda_conn_options_t *out)
{
    seda_conn_options_t o = { 0 };
    if (in)
        o = *in;
    if (o.high_watermark == 0)
        o.high_watermark = o.low_watermark > DEFAULT_HIGH ? o.low_watermark : DEFAULT_HIGH;
    if (o.low_watermark == 0)
        o.low_watermark = o.high_watermark < DEFAULT_LOW ? o.high_watermark / 2 : DEFAULT_LOW;
    if (o.hard_limit == 0)
        o.hard_limit = o.high_watermark > DEFAULT_HARD ? o.high_watermark : DEFAULT_HARD;
    if (o.low_watermark > o.high_watermark || o.high_watermark > o.hard_limit ||
        (o.clog_policy != SEDA_CLOG_CLOSE && o.clog_policy != SEDA_CLOG_NOTIFY) ||
        o.idle_timeout_ns < 0)
        return -EINVAL;
    *out = o;
    return 0;
}

/* ---- references ---------------------------------------------------------------- */

void seda_conn_retain(seda_conn_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void seda_conn_release(seda_conn_t *c)
{
    if (!c)
        return;
    /* acq_rel: the thread that frees sees every other holder's writes. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Finished on its loop before the loop's reference went: no socket,
     * no list, no timer, no operation is left. */
    if (c->sink)
        seda_stage_release(c->sink);
    void *user = atomic_load_explicit(&c->user, memory_order_acquire);
    if (user && c->user_destroy)
        c->user_destroy(user);
    free(c->usend);
    struct seda__io *io = c->io;
    free(c);
    if (io)
        seda__io_unref(io);
}

static void release_task(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    seda_conn_release((seda_conn_t *)((char *)t - offsetof(seda_conn_t, release_task)));
}

/* ---- dispatch -------------------------------------------------------------------- */

static void on_ready(struct seda__loop *l, struct seda__watcher *w, uint32_t events)
{
    (void)l;
    seda_conn_t *c = (seda_conn_t *)w;
    if (c->flags & SEDA__C_CLOSED)
        return;
    seda__io_clock(c->io);
    if (c->flags & SEDA__C_CONNECTING) {
        seda__conn_connect_ready(c, events);
        return;
    }
    if (events & (SEDA_POLLER_RDHUP | SEDA_POLLER_HUP))
        c->flags |= SEDA__C_RDHUP;
    bool acted = false;
    /* io_uring reads through its recv operation: readiness (registered for
     * sendfile's writability only) never reads. */
    if ((events & (SEDA_POLLER_IN | SEDA_POLLER_RDHUP | SEDA_POLLER_HUP | SEDA_POLLER_ERR)) &&
        !c->io->uring && seda__conn_wants_input(c)) {
        seda__conn_read(c); /* may close c: the loop's reference lives until
                             * this iteration's deferred work */
        acted = true;
    }
    if ((events & (SEDA_POLLER_OUT | SEDA_POLLER_ERR | SEDA_POLLER_HUP)) &&
        (c->flags & SEDA__C_OUT_WAIT) && !(c->flags & SEDA__C_CLOSED)) {
        c->flags &= ~SEDA__C_OUT_WAIT;
        seda__conn_flush(c);
        acted = true;
    }
    if (c->flags & SEDA__C_CLOSED)
        return;
    if (!c->io->edge) {
        /* Level: ERR and HUP are reported on every poll, interest or not. A
         * connection that neither reads nor writes now (its sink is full)
         * leaves the poller until it does, rather than spin. */
        if (!acted && (events & (SEDA_POLLER_ERR | SEDA_POLLER_HUP)) &&
            (c->flags & SEDA__C_WATCHED)) {
            seda__loop_unwatch(c->loop, &c->w);
            c->flags &= ~SEDA__C_WATCHED;
            c->interest = 0;
            return;
        }
        seda__conn_update_interest(c);
    }
}

static void on_complete(struct seda__loop *l, struct seda__watcher *w,
                        const struct seda__poller_completion *cp)
{
    (void)l;
    seda_conn_t *c = (seda_conn_t *)w;
    seda__io_clock(c->io);
    if (cp->kind == SEDA__POLLER_OP_RECV)
        seda__conn_recv_complete(c, cp);
    else
        seda__conn_send_complete(c, cp);
}

void seda__conn_update_interest(seda_conn_t *c)
{
    if (c->io->uring || c->io->edge || (c->flags & SEDA__C_CLOSED))
        return;
    uint32_t want = 0;
    if (seda__conn_wants_input(c) && !(c->flags & SEDA__C_STARVED))
        want |= SEDA_POLLER_IN | SEDA_POLLER_RDHUP;
    if (c->flags & SEDA__C_OUT_WAIT)
        want |= SEDA_POLLER_OUT;
    if (c->flags & SEDA__C_WATCHED) {
        if (want != c->interest && seda__loop_rewatch(c->loop, &c->w, want) == 0)
            c->interest = want;
    } else if (want) {
        int r = seda__loop_watch(c->loop, &c->w, want);
        if (r == 0) {
            c->flags |= SEDA__C_WATCHED;
            c->interest = want;
        } else {
            /* Never watched, it would wait for ever (select: a descriptor
             * numbered FD_SETSIZE or more, -EMFILE). */
            seda__conn_close_now(c, r);
        }
    }
}

/* ---- creation and setup ---------------------------------------------------------- */

static void idle_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled);

seda_conn_t *seda__conn_new(struct seda__loop *l, int fd, const seda_conn_options_t *o)
{
    seda_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->w.fd = fd;
    c->w.on_ready = on_ready;
    c->w.on_complete = on_complete;
    c->loop = l;
    c->thread = l->index;
    atomic_init(&c->refs, 1); /* the loop's */
    c->id = atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed) + 1;
    c->o = *o;
    c->idle_timer.fire = idle_fire;
    c->release_task.run = release_task;
    return c;
}

void seda__conn_link(seda_conn_t *c)
{
    struct seda__io *io = c->io;
    if (c->flags & SEDA__C_OPEN)
        return;
    c->flags |= SEDA__C_OPEN;
    c->prev = NULL;
    c->next = io->conns;
    if (io->conns)
        io->conns->prev = c;
    io->conns = c;
    seda__io_count(&io->st->connections_open, 1);
}

int seda__conn_start(seda_conn_t *c, struct seda__io_event *first)
{
    struct seda__io *io = c->io;
    struct seda__loop *l = c->loop;
    seda__conn_link(c);
    c->flags |= SEDA__C_READING;
    if (!c->o.nagle) {
        int one = 1;
        setsockopt(c->w.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int r = 0;
    if (io->uring) {
        if (c->flags & SEDA__C_WATCHED) { /* readiness was for the connect only */
            seda__loop_unwatch(l, &c->w);
            c->flags &= ~SEDA__C_WATCHED;
        }
        l->watchers++; /* its operations keep the loop polling; until finished */
        c->flags |= SEDA__C_COUNTED;
    } else if (io->edge) {
        /* Registered once for the connection's life (edge-triggered). */
        uint32_t all = SEDA_POLLER_IN | SEDA_POLLER_OUT | SEDA_POLLER_RDHUP;
        r = c->flags & SEDA__C_WATCHED ? seda__loop_rewatch(l, &c->w, all)
                                       : seda__loop_watch(l, &c->w, all);
        if (r == 0)
            c->flags |= SEDA__C_WATCHED;
        /* The registration reports what is readable already. */
        if (seda__conn_wants_input(c))
            c->flags |= SEDA__C_INPUT_ON;
    }
    if (first)
        seda__conn_deliver(c, first);
    if (r < 0) {
        seda__conn_close_now(c, r);
        return r;
    }
    if (c->o.idle_timeout_ns > 0) {
        seda__conn_touch(c);
        seda__loop_timer_start(l, &c->idle_timer, c->idle_deadline);
    }
    seda__conn_input_update(c);
    if (!io->uring && !io->edge && !(c->flags & SEDA__C_CLOSED)) {
        seda__conn_update_interest(c);
        if (!(c->flags & SEDA__C_WATCHED) && seda__conn_wants_input(c)) {
            /* select: a descriptor at or above FD_SETSIZE cannot be watched. */
            seda__conn_close_now(c, -EMFILE);
            return -EMFILE;
        }
    }
    return 0;
}

/* ---- closing ------------------------------------------------------------------------ */

void seda__conn_maybe_finish(seda_conn_t *c)
{
    if ((c->flags & (SEDA__C_CLOSED | SEDA__C_DONE)) != SEDA__C_CLOSED || c->recv_op || c->send_op)
        return;
    struct seda__io *io = c->io;
    c->flags |= SEDA__C_DONE;
    if (c->flags & SEDA__C_FINISHING) {
        c->flags &= ~SEDA__C_FINISHING;
        io->finishing--;
    }
    seda__conn_drop_output(c, c->close_error ? c->close_error : -ECANCELED);
    if (c->flags & SEDA__C_COUNTED)
        c->loop->watchers--;
    /* The loop's reference, after this iteration: a dispatch or a flush
     * running now may still look at c. */
    seda__loop_defer(c->loop, &c->release_task);
}

void seda__conn_close_now(seda_conn_t *c, int error)
{
    if (c->flags & SEDA__C_CLOSED)
        return;
    struct seda__io *io = c->io;
    struct seda__loop *l = c->loop;
    bool was_connecting = c->flags & SEDA__C_CONNECTING;
    c->flags |= SEDA__C_CLOSED;
    c->flags &= ~(SEDA__C_READING | SEDA__C_OUT_WAIT | SEDA__C_CONNECTING);
    c->close_error = error;
    seda__loop_timer_stop(l, &c->idle_timer);
    seda__loop_timer_stop(l, &c->connect_timer);
    if (io->uring) {
        if (c->recv_op) {
            int r = io->uring->stop(l->poller, c->recv_op);
            if (r == 1)
                c->recv_op = 0; /* it waited for a buffer: ended now */
            else if (r < 0 && r != -ENOENT)
                shutdown(c->w.fd, SHUT_RDWR); /* not stopped: end of stream ends it */
            /* 0, or -ENOENT (a stop is under way already: read_stop, the
             * budget): its last completion follows, and c lives until then. */
        }
        /* A send in flight keeps its buffers until its completion: make it
         * end soon. */
        if (c->send_op)
            shutdown(c->w.fd, SHUT_RDWR);
    }
    if (c->flags & SEDA__C_WATCHED) {
        seda__loop_unwatch(l, &c->w);
        c->flags &= ~SEDA__C_WATCHED;
    }
    /* Kernel requests hold the file, not the number: closing now is safe. */
    close(c->w.fd);
    c->w.fd = -1;
    if (c->flags & SEDA__C_OPEN) {
        c->flags &= ~SEDA__C_OPEN;
        if (c->prev)
            c->prev->next = c->next;
        else
            io->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = c->next = NULL;
        seda__io_count(&io->st->connections_open, (uint64_t)-1);
    }
    if (was_connecting)
        seda__io_count(&io->st->connect_failed, 1);
    if (c->listener) {
        seda_listener_t *ls = c->listener;
        c->listener = NULL;
        if (!c->sink && ls->accept_sink) {
            /* It never had a sink: CLOSED goes where ACCEPTED went. */
            seda_stage_retain(ls->accept_sink);
            c->sink = ls->accept_sink;
        }
        seda__listener_conn_closed(ls);
        seda_listener_release(ls);
    }
    /* A connect that never completed ends with CONNECT_FAILED instead. */
    struct seda__io_event *ev = seda__io_event_new(
        io, was_connecting ? SEDA_IO_CONNECT_FAILED : SEDA_IO_CLOSED, was_connecting ? NULL : c);
    if (ev) {
        ev->pub.error = error;
        if (was_connecting) {
            ev->pub.tag = c->connect_tag;
            ev->hold = c; /* keeps c (and its pending list) until released */
            seda_conn_retain(c);
        }
        seda__conn_deliver(c, ev);
    }

    if (c->recv_op || c->send_op) {
        c->flags |= SEDA__C_FINISHING;
        io->finishing++;
    }
    seda__conn_maybe_finish(c);
}

int seda__conn_close_after_flush(seda_conn_t *c)
{
    if (c->flags & SEDA__C_CLOSED)
        return -EPIPE;
    c->flags |= SEDA__C_CLOSING | SEDA__C_WR_SHUT;
    seda__conn_input_update(c);
    if (!c->out_head && !c->send_op)
        seda__conn_close_now(c, 0);
    else
        seda__conn_flush_later(c);
    return 0;
}

/* ---- idle timeout ------------------------------------------------------------------ */

static void idle_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled)
{
    seda_conn_t *c = (seda_conn_t *)((char *)t - offsetof(seda_conn_t, idle_timer));
    if (cancelled || (c->flags & SEDA__C_CLOSED) || c->o.idle_timeout_ns <= 0)
        return;
    int64_t now = seda__clock_now_fast(l->rt->clock);
    if (now < c->idle_deadline) { /* activity moved it: once per period */
        seda__loop_timer_start(l, t, c->idle_deadline);
        return;
    }
    seda__io_count(&c->io->st->timeouts, 1);
    seda__conn_close_now(c, -ETIMEDOUT);
}

static int set_idle(seda_conn_t *c, int64_t ns)
{
    if (c->flags & SEDA__C_CLOSED)
        return -EPIPE;
    c->o.idle_timeout_ns = ns;
    if (ns <= 0) {
        seda__loop_timer_stop(c->loop, &c->idle_timer);
        return 0;
    }
    c->idle_deadline = seda__clock_now_fast(c->loop->rt->clock);
    c->idle_deadline = c->idle_deadline > INT64_MAX - ns ? INT64_MAX : c->idle_deadline + ns;
    return seda__loop_timer_start(c->loop, &c->idle_timer, c->idle_deadline);
}

/* ---- owner-thread halves of the control calls ---------------------------------------- */

static int set_sink(seda_conn_t *c, seda_stage_t *sink)
{
    if (c->flags & SEDA__C_CLOSED && !c->pend_head)
        return -EPIPE;
    seda_stage_retain(sink);
    if (c->sink)
        seda_stage_release(c->sink);
    c->sink = sink;
    /* Events waiting for a sink go now (the stalled list's next retry
     * takes c off it). */
    if (c->pend_head)
        seda__conn_deliver_pending(c, UINT32_MAX);
    seda__conn_input_update(c);
    return 0;
}

static int read_ctl(seda_conn_t *c, bool start)
{
    if (c->flags & SEDA__C_CLOSED)
        return -EPIPE;
    if (start)
        c->flags |= SEDA__C_READING;
    else
        c->flags &= ~SEDA__C_READING;
    seda__conn_input_update(c);
    return 0;
}

/* ---- calls from other threads: posted to the owner, in order ------------------------------ */

enum req_op {
    REQ_WRITE,
    REQ_COPY,
    REQ_FILE,
    REQ_MARK,
    REQ_SHUTDOWN,
    REQ_CLOSE,
    REQ_READ,
    REQ_SINK,
    REQ_IDLE,
};

struct req {
    struct seda__task task;
    seda_conn_t *c;
    int op;
    int mode; /* CLOSE: the mode; READ: start */
    const void *buf;
    uint64_t len, off; /* WRITE, COPY, FILE */
    int fd;
    seda_write_release_fn release;
    void *ctx;
    uint64_t tag;       /* MARK */
    seda_stage_t *sink; /* SINK (a reference) */
    int64_t ns;         /* IDLE */
    uint8_t copy[];     /* COPY */
};

static void req_run(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    struct req *q = (struct req *)t;
    seda_conn_t *c = q->c;
    int r = 0;
    switch (q->op) {
    case REQ_WRITE:
        r = seda__conn_write_ref(c, q->buf, q->len, q->release, q->ctx);
        if (r < 0)
            q->release(q->ctx, q->buf, r);
        break;
    case REQ_COPY: /* past the hard limit nothing was copied: refused before any read */
        seda__conn_write_copy(c, q->len > c->o.hard_limit ? NULL : q->copy, q->len);
        break;
    case REQ_FILE:
        r = seda__conn_write_file(c, q->fd, q->off, q->len, q->release, q->ctx);
        if (r < 0)
            q->release(q->ctx, NULL, r);
        break;
    case REQ_MARK: seda__conn_write_mark(c, q->tag); break;
    case REQ_SHUTDOWN: seda__conn_write_shutdown(c); break;
    case REQ_CLOSE:
        if (q->mode == SEDA_CLOSE_NOW)
            seda__conn_close_now(c, 0);
        else
            seda__conn_close_after_flush(c);
        break;
    case REQ_READ: read_ctl(c, q->mode); break;
    case REQ_SINK:
        set_sink(c, q->sink);
        seda_stage_release(q->sink);
        break;
    case REQ_IDLE: set_idle(c, q->ns); break;
    }
    seda_conn_release(c);
    free(q);
}

static struct req *req_new(seda_conn_t *c, int op, size_t extra)
{
    struct req *q = malloc(sizeof *q + extra);
    if (q) {
        memset(q, 0, sizeof *q);
        q->c = c;
        q->op = op;
        q->task.run = req_run;
    }
    return q;
}

/* Posts q to c's loop. -EPIPE (q freed) once the loop has exited. */
static int req_post(struct req *q)
{
    seda_conn_t *c = q->c;
    seda_conn_retain(c);
    if (seda__loop_post(c->loop, &q->task))
        return 0;
    seda_conn_release(c);
    if (q->sink)
        seda_stage_release(q->sink);
    free(q);
    return -EPIPE;
}

int seda_conn_write(seda_conn_t *c, const void *buf, size_t len, seda_write_release_fn release,
                    void *ctx)
{
    if (!c || (!buf && len) || !release)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return seda__conn_write_ref(c, buf, len, release, ctx);
    struct req *q = req_new(c, REQ_WRITE, 0);
    if (!q)
        return -ENOMEM;
    q->buf = buf;
    q->len = len;
    q->release = release;
    q->ctx = ctx;
    return req_post(q);
}

int seda_conn_write_copy(seda_conn_t *c, const void *buf, size_t len)
{
    if (!c || (!buf && len))
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return seda__conn_write_copy(c, buf, len);
    /* More than the hard limit is refused by the owner whatever is queued
     * (its clog policy applies): copy nothing (a length near SIZE_MAX would
     * wrap the request's size). c->o.hard_limit never changes. */
    bool refused = len > c->o.hard_limit;
    struct req *q = req_new(c, REQ_COPY, refused ? 0 : len);
    if (!q)
        return -ENOMEM;
    if (len && !refused)
        memcpy(q->copy, buf, len);
    q->len = len;
    return req_post(q);
}

int seda_conn_sendfile(seda_conn_t *c, int fd, uint64_t offset, uint64_t len,
                       seda_write_release_fn release, void *ctx)
{
    if (!c || fd < 0 || !release)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return seda__conn_write_file(c, fd, offset, len, release, ctx);
    struct req *q = req_new(c, REQ_FILE, 0);
    if (!q)
        return -ENOMEM;
    q->fd = fd;
    q->off = offset;
    q->len = len;
    q->release = release;
    q->ctx = ctx;
    return req_post(q);
}

int seda_conn_write_mark(seda_conn_t *c, uint64_t tag)
{
    if (!c)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return seda__conn_write_mark(c, tag);
    struct req *q = req_new(c, REQ_MARK, 0);
    if (!q)
        return -ENOMEM;
    q->tag = tag;
    return req_post(q);
}

int seda_conn_shutdown_write(seda_conn_t *c)
{
    if (!c)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return seda__conn_write_shutdown(c);
    struct req *q = req_new(c, REQ_SHUTDOWN, 0);
    return q ? req_post(q) : -ENOMEM;
}

int seda_conn_close(seda_conn_t *c, int mode)
{
    if (!c || (mode != SEDA_CLOSE_NOW && mode != SEDA_CLOSE_AFTER_FLUSH))
        return -EINVAL;
    if (seda__conn_on_owner(c)) {
        if (c->flags & SEDA__C_CLOSED)
            return -EPIPE;
        if (mode == SEDA_CLOSE_NOW) {
            seda__conn_close_now(c, 0);
            return 0;
        }
        return seda__conn_close_after_flush(c);
    }
    struct req *q = req_new(c, REQ_CLOSE, 0);
    if (!q)
        return -ENOMEM;
    q->mode = mode;
    return req_post(q);
}

static int read_call(seda_conn_t *c, bool start)
{
    if (!c)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return read_ctl(c, start);
    struct req *q = req_new(c, REQ_READ, 0);
    if (!q)
        return -ENOMEM;
    q->mode = start;
    return req_post(q);
}

int seda_conn_read_stop(seda_conn_t *c)
{
    return read_call(c, false);
}

int seda_conn_read_start(seda_conn_t *c)
{
    return read_call(c, true);
}

int seda_conn_set_sink(seda_conn_t *c, seda_stage_t *sink)
{
    if (!c || !sink)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return set_sink(c, sink);
    struct req *q = req_new(c, REQ_SINK, 0);
    if (!q)
        return -ENOMEM;
    seda_stage_retain(sink);
    q->sink = sink;
    return req_post(q);
}

int seda_conn_set_idle_timeout(seda_conn_t *c, int64_t timeout_ns)
{
    if (!c || timeout_ns < 0)
        return -EINVAL;
    if (seda__conn_on_owner(c))
        return set_idle(c, timeout_ns);
    struct req *q = req_new(c, REQ_IDLE, 0);
    if (!q)
        return -ENOMEM;
    q->ns = timeout_ns;
    return req_post(q);
}

/* ---- accessors ------------------------------------------------------------------------- */

void seda_conn_set_user(seda_conn_t *c, void *user, void (*destroy)(void *user))
{
    void (*old_destroy)(void *) = c->user_destroy;
    c->user_destroy = destroy;
    /* Release: what user points to is visible to a thread that loads it. */
    void *old = atomic_exchange_explicit(&c->user, user, memory_order_acq_rel);
    if (old && old_destroy)
        old_destroy(old);
}

void *seda_conn_user(const seda_conn_t *c)
{
    /* Acquire: pairs with the release store in seda_conn_set_user. */
    return atomic_load_explicit(&((seda_conn_t *)c)->user, memory_order_acquire);
}

uint32_t seda_conn_thread(const seda_conn_t *c)
{
    return c->thread;
}

uint64_t seda_conn_id(const seda_conn_t *c)
{
    return c->id;
}

size_t seda_conn_queued(const seda_conn_t *c)
{
    return atomic_load_explicit(&((seda_conn_t *)c)->queued, memory_order_relaxed);
}

int seda_conn_peer(const seda_conn_t *c, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    int n;
    if (c->peer.sa.sa_family == AF_INET) {
        const struct sockaddr_in *a = &c->peer.in;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        n = snprintf(buf, size, "%s:%u", ip, ntohs(a->sin_port));
    } else if (c->peer.sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = &c->peer.in6;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        n = snprintf(buf, size, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        return -ENOTCONN;
    }
    return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}
