/*
 * The io_uring backend: readiness through multishot IORING_OP_POLL_ADD, and
 * completion operations (multishot accept, multishot recv into a provided
 * buffer ring, send) for the socket layer (poller.h, docs/design/io.md 2).
 *
 * The ring is created, where the kernel has them, with SINGLE_ISSUER |
 * DEFER_TASKRUN (6.1): only the owner thread submits, and the kernel runs
 * completion work only when that thread asks for events, so a wait is one
 * io_uring_enter that submits what add/mod/del queued, runs the deferred
 * work and sleeps with a timeout (IORING_ENTER_EXT_ARG). The ring starts
 * disabled (R_DISABLED) and the first thread that uses it enables it and
 * becomes its owner, so a poller can be created on one thread and run on
 * another. Kernels without DEFER_TASKRUN get COOP_TASKRUN, then no flag.
 * Measured here (the seda-bench poll kernel, 1 active + 1,000 idle
 * connections, 8 alternating rounds, each event = write + wait + read on
 * loopback TCP, a shared 2-CPU machine): 14.7 us per event with
 * DEFER_TASKRUN, 16.7 with COOP_TASKRUN, 16.9 with neither.
 *
 * Multishot poll is edge-triggered (the kernel adds EPOLLET unless asked
 * for IORING_POLL_ADD_LEVEL): one completion per wake-up of the descriptor.
 * Each completion's user_data names its request: kind, generation, and the
 * descriptor (poll) or operation slot (ops). add/mod/del bump the
 * descriptor's generation, so completions of a removed or replaced poll
 * request are recognised and dropped. Every request ends with exactly one
 * completion without IORING_CQE_F_MORE: an operation's slot lives until
 * then, so destroy can wait for every operation that may touch memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "internal.h"
#include "poller.h"

/* user_data: kind << 56 | generation (24 bits) << 32 | descriptor or slot. */
enum { UD_INTERNAL = 0, UD_POLL = 1, UD_OP = 2 };
#define GEN_MASK 0xffffffu

static inline uint64_t make_ud(unsigned kind, uint32_t gen, uint32_t index)
{
    return (uint64_t)kind << 56 | (uint64_t)(gen & GEN_MASK) << 32 | index;
}

static inline unsigned ud_kind(uint64_t ud)
{
    return (unsigned)(ud >> 56);
}
static inline uint32_t ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & GEN_MASK;
}
static inline uint32_t ud_index(uint64_t ud)
{
    return (uint32_t)ud;
}

/* A poll request that ended with an error is not re-armed; its descriptor's
 * slot holds this instead of an armed generation. */
#define POLL_DEAD 0xffffffffu

enum op_state { OP_FREE = 0, OP_ARMED, OP_STARVED, OP_CANCELLED };

struct op {
    void *udata;
    struct seda__poller_bufring *br; /* recv */
    int fd;
    uint32_t gen;
    uint8_t kind;  /* enum seda__poller_op_kind */
    uint8_t state; /* enum op_state */
    uint32_t next; /* free list, or the buffer ring's starved list */
};

#define NO_OP 0xffffffffu

struct seda__poller_bufring {
    struct io_uring_buf_ring *ring;
    size_t ring_bytes;
    char *bufs;
    size_t bufs_bytes;
    uint32_t count, size;
    int mask;
    uint16_t bgid;
    uint64_t puts;                       /* buffers handed back so far */
    uint64_t puts_at_enter;              /* puts when the last io_uring_enter began */
    uint32_t starved_head, starved_tail; /* recvs waiting for a buffer, FIFO */
    struct seda__poller_bufring *next;   /* the poller's list */
};

struct uring_impl {
    struct io_uring ring;
    bool disabled; /* created R_DISABLED, not enabled yet */
    bool closing;  /* destroy is draining: completions are only counted */
    bool owned;
    pthread_t owner;
    uint32_t stamp;       /* wait number, for merging two completions of one fd */
    uint32_t completions; /* delivered by the current wait */
    struct op *ops;
    uint32_t ops_cap, free_head;
    seda__poller_completion_fn handler;
    void *handler_ctx;
    struct seda__poller_bufring *bufrings;
    uint32_t next_bgid;
};

/* ---- setup -------------------------------------------------------------- */

static int uring_init(struct seda_poller *p, const seda_poller_options_t *opts)
{
    unsigned entries = opts->uring_entries ? opts->uring_entries : 256;
    static const struct {
        unsigned flags;
        const char *name;
    } tiers[] = {
        { IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
              IORING_SETUP_SUBMIT_ALL,
          "SINGLE_ISSUER|DEFER_TASKRUN" },
        { IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "COOP_TASKRUN" },
        { 0, "no setup flags" },
    };
    struct uring_impl *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    int rc = -EINVAL;
    size_t tier = 0;
    for (; tier < sizeof tiers / sizeof tiers[0]; tier++) {
        struct io_uring_params params;
        memset(&params, 0, sizeof params);
        params.flags = tiers[tier].flags | IORING_SETUP_CQSIZE;
        params.cq_entries = entries * 16;
        rc = io_uring_queue_init_params(entries, &s->ring, &params);
        /* EINVAL: a flag this kernel does not know; anything else is the
         * kernel refusing io_uring itself. */
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0) {
        free(s);
        return rc;
    }
    /* Timed waits need IORING_ENTER_EXT_ARG (5.11). */
    if (!(s->ring.features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&s->ring);
        free(s);
        return -ENOSYS;
    }
    s->disabled = (s->ring.flags & IORING_SETUP_R_DISABLED) != 0;
    s->free_head = NO_OP;
    p->impl = s;
    snprintf(p->describe, sizeof p->describe, "io_uring (multishot poll, edge; %s)",
             tiers[tier].name);
    return 0;
}

/* The owner thread: the first to use the ring enables it (SINGLE_ISSUER
 * binds the ring to the thread that enables it). */
static int uring_enter_hook(struct seda_poller *p)
{
    struct uring_impl *s = p->impl;
    if (SEDA__LIKELY(s->owned))
        return pthread_equal(s->owner, pthread_self()) ? 0 : -EBUSY;
    if (s->disabled) {
        /* liburing 2.3 declares io_uring_enable_rings but does not export it:
         * the raw register call does the same. */
        int rc = io_uring_register(s->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (rc < 0)
            return rc;
        s->disabled = false;
    }
    s->owner = pthread_self();
    s->owned = true;
    return 0;
}

/* ---- submission --------------------------------------------------------- */

/* Room for n SQEs, submitting what is queued if the ring is full. */
static int reserve_sqes(struct uring_impl *s, unsigned n)
{
    if (io_uring_sq_space_left(&s->ring) >= n)
        return 0;
    int rc = io_uring_submit(&s->ring);
    if (rc < 0 && rc != -EBUSY)
        return rc;
    return io_uring_sq_space_left(&s->ring) >= n ? 0 : -EAGAIN;
}

/* An SQE, once reserve_sqes said there is room. The caller sets its
 * user_data after the io_uring_prep_* call, which owns every other field. */
static struct io_uring_sqe *take_sqe(struct uring_impl *s)
{
    return io_uring_get_sqe(&s->ring);
}

static void prep_poll(struct uring_impl *s, struct seda_poller *p, int fd)
{
    struct seda__poller_fd *e = &p->fds[fd];
    struct io_uring_sqe *sqe = take_sqe(s);
    io_uring_prep_poll_multishot(sqe, fd, (unsigned)(uint16_t)seda__poller_to_poll(e->events));
    io_uring_sqe_set_data64(sqe, make_ud(UD_POLL, e->gen, (uint32_t)fd));
    e->slot = e->gen & GEN_MASK;
}

static void prep_poll_remove(struct uring_impl *s, struct seda_poller *p, int fd)
{
    struct seda__poller_fd *e = &p->fds[fd];
    if (e->slot == POLL_DEAD)
        return;
    struct io_uring_sqe *sqe = take_sqe(s);
    io_uring_prep_poll_remove(sqe, make_ud(UD_POLL, e->slot, (uint32_t)fd));
    io_uring_sqe_set_data64(sqe, make_ud(UD_INTERNAL, 0, 0));
    e->slot = POLL_DEAD;
}

static int uring_add(struct seda_poller *p, int fd)
{
    struct uring_impl *s = p->impl;
    int rc = reserve_sqes(s, 1);
    if (rc < 0)
        return rc;
    prep_poll(s, p, fd);
    return 0;
}

static int uring_mod(struct seda_poller *p, int fd, uint32_t old_events)
{
    (void)old_events;
    struct uring_impl *s = p->impl;
    int rc = reserve_sqes(s, 2);
    if (rc < 0)
        return rc;
    /* Remove and re-add under the new generation rather than
     * IORING_POLL_UPDATE: the same SQE count, and a completion of the old
     * request that is already in the ring is dropped by its generation. */
    prep_poll_remove(s, p, fd);
    prep_poll(s, p, fd);
    return 0;
}

static int uring_del(struct seda_poller *p, int fd)
{
    struct uring_impl *s = p->impl;
    int rc = reserve_sqes(s, 1);
    if (rc < 0)
        return rc;
    prep_poll_remove(s, p, fd);
    /* The poll request holds a reference to the file: until it has ended, a
     * close(fd) after del would not really close (no FIN for a socket). Run
     * the removal now, and with DEFER_TASKRUN the task work that ends the
     * request too (GETEVENTS, waiting for nothing): one system call per del,
     * as epoll_ctl costs. */
    io_uring_submit_and_get_events(&s->ring);
    return 0;
}

/* ---- completion operations ---------------------------------------------- */

static uint32_t op_alloc(struct uring_impl *s)
{
    if (s->free_head == NO_OP) {
        uint32_t cap = s->ops_cap ? s->ops_cap * 2 : 64;
        if (cap > (1u << 31))
            return NO_OP;
        struct op *ops = realloc(s->ops, (size_t)cap * sizeof *ops);
        if (ops == NULL)
            return NO_OP;
        for (uint32_t i = s->ops_cap; i < cap; i++)
            ops[i] = (struct op){ .state = OP_FREE, .next = i + 1 < cap ? i + 1 : NO_OP };
        s->free_head = s->ops_cap;
        s->ops = ops;
        s->ops_cap = cap;
    }
    uint32_t i = s->free_head;
    s->free_head = s->ops[i].next;
    s->ops[i].gen = (s->ops[i].gen + 1) & GEN_MASK;
    s->ops[i].next = NO_OP;
    return i;
}

static void op_free(struct uring_impl *s, uint32_t i)
{
    struct op *o = &s->ops[i];
    o->state = OP_FREE;
    o->kind = 0;
    o->udata = NULL;
    o->br = NULL;
    o->next = s->free_head;
    s->free_head = i;
}

static struct op *op_lookup(struct uring_impl *s, uint64_t handle, uint32_t *index)
{
    uint32_t i = ud_index(handle);
    if (ud_kind(handle) != UD_OP || i >= s->ops_cap)
        return NULL;
    struct op *o = &s->ops[i];
    if (o->state == OP_FREE || o->gen != ud_gen(handle))
        return NULL;
    *index = i;
    return o;
}

static void prep_op(struct uring_impl *s, uint32_t i, const void *buf, uint32_t len)
{
    struct op *o = &s->ops[i];
    struct io_uring_sqe *sqe = take_sqe(s);
    switch (o->kind) {
    case SEDA__POLLER_OP_ACCEPT:
        io_uring_prep_multishot_accept(sqe, o->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case SEDA__POLLER_OP_RECV:
        io_uring_prep_recv_multishot(sqe, o->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = o->br->bgid;
        break;
    case SEDA__POLLER_OP_SEND: io_uring_prep_send(sqe, o->fd, buf, len, MSG_NOSIGNAL); break;
    }
    io_uring_sqe_set_data64(sqe, make_ud(UD_OP, o->gen, i));
    o->state = OP_ARMED;
}

static int start_op(struct seda_poller *p, int kind, int fd, struct seda__poller_bufring *br,
                    const void *buf, uint32_t len, void *udata, uint64_t *handle)
{
    struct uring_impl *s = p->impl;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EBADF;
    if (handle == NULL)
        return -EINVAL;
    rc = reserve_sqes(s, 1);
    if (rc < 0)
        return rc;
    uint32_t i = op_alloc(s);
    if (i == NO_OP)
        return -ENOMEM;
    struct op *o = &s->ops[i];
    o->kind = (uint8_t)kind;
    o->fd = fd;
    o->br = br;
    o->udata = udata;
    prep_op(s, i, buf, len);
    *handle = make_ud(UD_OP, o->gen, i);
    return 0;
}

static int uring_accept(struct seda_poller *p, int fd, void *udata, uint64_t *op)
{
    return start_op(p, SEDA__POLLER_OP_ACCEPT, fd, NULL, NULL, 0, udata, op);
}

static int uring_recv(struct seda_poller *p, int fd, struct seda__poller_bufring *br, void *udata,
                      uint64_t *op)
{
    if (br == NULL)
        return -EINVAL;
    return start_op(p, SEDA__POLLER_OP_RECV, fd, br, NULL, 0, udata, op);
}

static int uring_send(struct seda_poller *p, int fd, const void *buf, uint32_t len, void *udata,
                      uint64_t *op)
{
    if (buf == NULL && len > 0)
        return -EINVAL;
    return start_op(p, SEDA__POLLER_OP_SEND, fd, NULL, buf, len, udata, op);
}

static void starved_remove(struct uring_impl *s, struct seda__poller_bufring *br, uint32_t i)
{
    uint32_t prev = NO_OP;
    for (uint32_t k = br->starved_head; k != NO_OP; prev = k, k = s->ops[k].next) {
        if (k != i)
            continue;
        if (prev == NO_OP)
            br->starved_head = s->ops[k].next;
        else
            s->ops[prev].next = s->ops[k].next;
        if (br->starved_tail == k)
            br->starved_tail = prev;
        s->ops[k].next = NO_OP;
        return;
    }
}

static int uring_cancel(struct seda_poller *p, uint64_t handle)
{
    struct uring_impl *s = p->impl;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    uint32_t i;
    struct op *o = op_lookup(s, handle, &i);
    if (o == NULL || o->state == OP_CANCELLED)
        return -ENOENT;
    if (o->kind == SEDA__POLLER_OP_SEND)
        return -EBUSY;
    if (o->state == OP_STARVED) {
        /* No request in the kernel: nothing to wait for. */
        starved_remove(s, o->br, i);
        op_free(s, i);
        return 0;
    }
    rc = reserve_sqes(s, 1);
    if (rc < 0)
        return rc;
    struct io_uring_sqe *sqe = take_sqe(s);
    io_uring_prep_cancel64(sqe, handle, 0);
    io_uring_sqe_set_data64(sqe, make_ud(UD_INTERNAL, 0, 0));
    /* The slot lives on until the request's last completion, so that the
     * buffers it may still fill are put back to the right ring. */
    o->state = OP_CANCELLED;
    /* As in del: end the request now, so that a close(fd) that follows
     * really closes the socket. */
    io_uring_submit_and_get_events(&s->ring);
    return 0;
}

static void uring_set_handler(struct seda_poller *p, seda__poller_completion_fn fn, void *ctx)
{
    struct uring_impl *s = p->impl;
    s->handler = fn;
    s->handler_ctx = ctx;
}

/* ---- provided buffer rings ---------------------------------------------- */

static void *buffer_addr(const struct seda__poller_bufring *br, uint16_t id)
{
    return br->bufs + (size_t)id * br->size;
}

static uint32_t buffer_size(const struct seda__poller_bufring *br)
{
    return br->size;
}

static void ring_add(struct seda__poller_bufring *br, uint16_t id)
{
    io_uring_buf_ring_add(br->ring, buffer_addr(br, id), br->size, id, br->mask, 0);
    /* io_uring_buf_ring_advance publishes the tail with a release store: the
     * kernel, which loads it with acquire, sees the entry written above. */
    io_uring_buf_ring_advance(br->ring, 1);
}

static int uring_bufring_create(struct seda_poller *p, uint32_t count, uint32_t size,
                                struct seda__poller_bufring **out)
{
    struct uring_impl *s = p->impl;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    if (out == NULL || count == 0 || count > 32768 || (count & (count - 1)) != 0 || size == 0 ||
        (uint64_t)count * size > (1ull << 30))
        return -EINVAL;
    if (s->next_bgid > 0xffff)
        return -ENOSPC;
    struct seda__poller_bufring *br = calloc(1, sizeof *br);
    if (br == NULL)
        return -ENOMEM;
    long page = sysconf(_SC_PAGESIZE);
    br->ring_bytes =
        ((size_t)count * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
    br->bufs_bytes = (size_t)count * size;
    /* The ring must be page-aligned: mmap gives that (liburing 2.4's
     * io_uring_setup_buf_ring does the same; 2.3 lacks it). */
    br->ring =
        mmap(NULL, br->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    br->bufs =
        mmap(NULL, br->bufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br->ring == MAP_FAILED || br->bufs == MAP_FAILED) {
        rc = -ENOMEM;
        goto fail;
    }
    br->count = count;
    br->size = size;
    br->mask = io_uring_buf_ring_mask(count);
    br->bgid = (uint16_t)s->next_bgid;
    br->starved_head = br->starved_tail = NO_OP;
    io_uring_buf_ring_init(br->ring);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br->ring;
    reg.ring_entries = count;
    reg.bgid = br->bgid;
    rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc < 0)
        goto fail;
    for (uint32_t i = 0; i < count; i++)
        io_uring_buf_ring_add(br->ring, buffer_addr(br, (uint16_t)i), size, (uint16_t)i, br->mask,
                              (int)i);
    io_uring_buf_ring_advance(br->ring, (int)count);
    s->next_bgid++;
    br->next = s->bufrings;
    s->bufrings = br;
    *out = br;
    return 0;
fail:
    if (br->ring != NULL && br->ring != MAP_FAILED)
        munmap(br->ring, br->ring_bytes);
    if (br->bufs != NULL && br->bufs != MAP_FAILED)
        munmap(br->bufs, br->bufs_bytes);
    free(br);
    return rc;
}

static void bufring_unmap(struct seda__poller_bufring *br)
{
    munmap(br->ring, br->ring_bytes);
    munmap(br->bufs, br->bufs_bytes);
    free(br);
}

static void uring_bufring_destroy(struct seda_poller *p, struct seda__poller_bufring *br)
{
    struct uring_impl *s = p->impl;
    if (br == NULL)
        return;
    for (struct seda__poller_bufring **link = &s->bufrings; *link != NULL; link = &(*link)->next) {
        if (*link == br) {
            *link = br->next;
            break;
        }
    }
    io_uring_unregister_buf_ring(&s->ring, br->bgid);
    bufring_unmap(br);
}

static void uring_buffer_put(struct seda_poller *p, struct seda__poller_bufring *br, uint16_t id)
{
    struct uring_impl *s = p->impl;
    ring_add(br, id);
    br->puts++;
    /* A recv that found no buffer has data waiting: give it this one. One
     * per buffer returned, in order, so a returned buffer wakes one
     * connection rather than every starved one. */
    uint32_t i = br->starved_head;
    if (i != NO_OP && reserve_sqes(s, 1) == 0) {
        br->starved_head = s->ops[i].next;
        if (br->starved_head == NO_OP)
            br->starved_tail = NO_OP;
        s->ops[i].next = NO_OP;
        prep_op(s, i, NULL, 0);
    }
}

static void starve(struct seda__poller_bufring *br, struct uring_impl *s, uint32_t i)
{
    s->ops[i].state = OP_STARVED;
    s->ops[i].next = NO_OP;
    if (br->starved_tail == NO_OP)
        br->starved_head = i;
    else
        s->ops[br->starved_tail].next = i;
    br->starved_tail = i;
}

/* ---- completions -------------------------------------------------------- */

/* Arms op i again after the kernel ended it without an error; false when
 * the submission queue has no room (the operation then ends). */
static bool rearm(struct uring_impl *s, uint32_t i)
{
    if (reserve_sqes(s, 1) < 0)
        return false;
    prep_op(s, i, NULL, 0);
    return true;
}

static void on_op(struct seda_poller *p, uint64_t ud, int32_t res, uint32_t cflags)
{
    struct uring_impl *s = p->impl;
    uint32_t i = ud_index(ud);
    if (i >= s->ops_cap || s->ops[i].state == OP_FREE || s->ops[i].gen != ud_gen(ud))
        return; /* cannot happen: a slot lives until its request's last completion */
    struct op *o = &s->ops[i];
    struct seda__poller_bufring *br = o->br;
    bool more = (cflags & IORING_CQE_F_MORE) != 0;
    bool has_buf = (cflags & IORING_CQE_F_BUFFER) != 0;
    uint16_t bid = (uint16_t)(cflags >> IORING_CQE_BUFFER_SHIFT);

    if (o->state == OP_CANCELLED) {
        if (has_buf)
            uring_buffer_put(p, br, bid);
        if (!more)
            op_free(s, i);
        return;
    }

    struct seda__poller_completion c = {
        .udata = o->udata,
        .op = ud,
        .kind = o->kind,
        .fd = o->fd,
        .res = res,
        .flags = more ? SEDA__POLLER_MORE : 0,
        .buf = NULL,
        .buf_id = 0,
    };
    switch (o->kind) {
    case SEDA__POLLER_OP_ACCEPT:
        /* Ended with a success (the kernel stops a multishot request when
         * its completion queue overflows): arm it again. */
        if (res >= 0 && !more && rearm(s, i))
            c.flags = SEDA__POLLER_MORE;
        break;
    case SEDA__POLLER_OP_RECV:
        if (res == -ENOBUFS && !more) {
            /* Backpressure, not a spin: re-arm only once a buffer has come
             * back. A put since this wait entered the kernel may have come
             * after the kernel found the ring empty: re-arm now then. */
            if (br->puts == br->puts_at_enter || !rearm(s, i))
                starve(br, s, i);
            return;
        }
        if (has_buf) {
            c.buf = buffer_addr(br, bid);
            c.buf_id = bid;
        }
        if (res > 0 && !more && rearm(s, i))
            c.flags = SEDA__POLLER_MORE;
        break;
    case SEDA__POLLER_OP_SEND: break;
    }
    if (!(c.flags & SEDA__POLLER_MORE))
        op_free(s, i); /* before the handler, which may start a new one */
    s->completions++;
    if (s->handler != NULL)
        s->handler(s->handler_ctx, &c);
    else if (c.buf != NULL)
        uring_buffer_put(p, br, c.buf_id);
}

static int on_poll(struct seda_poller *p, uint64_t ud, int32_t res, uint32_t cflags,
                   seda_poller_event_t *out, int n)
{
    struct uring_impl *s = p->impl;
    uint32_t fd = ud_index(ud);
    if (fd >= p->fds_cap)
        return n;
    struct seda__poller_fd *e = &p->fds[fd];
    if (!e->registered || e->slot != ud_gen(ud) || s->closing)
        return n; /* a removed or replaced request, or destroy draining */
    uint32_t ev;
    if (res < 0) {
        e->slot = POLL_DEAD; /* -EBADF and the like: reported once, not re-armed */
        ev = SEDA_POLLER_ERR;
    } else {
        ev = seda__poller_from_poll((uint32_t)res, e->events);
        if (!(cflags & IORING_CQE_F_MORE) && reserve_sqes(s, 1) == 0)
            prep_poll(s, p, (int)fd); /* the kernel ended it (overflow): arm again */
    }
    if (ev == 0)
        return n;
    /* Two completions of one descriptor in one wait make one event. */
    if (e->stamp == s->stamp && (int)e->out_index < n && out[e->out_index].fd == (int)fd) {
        out[e->out_index].events |= ev;
        return n;
    }
    e->stamp = s->stamp;
    e->out_index = (uint32_t)n;
    out[n].udata = e->udata;
    out[n].fd = (int)fd;
    out[n].events = ev;
    return n + 1;
}

/* Consumes completions until out is full or none is left. */
static int reap(struct seda_poller *p, seda_poller_event_t *out, int max)
{
    struct uring_impl *s = p->impl;
    struct io_uring_cqe *cqe;
    int n = 0;
    s->stamp++;
    while (n < max && io_uring_peek_cqe(&s->ring, &cqe) == 0) {
        uint64_t ud = cqe->user_data;
        int32_t res = cqe->res;
        uint32_t cflags = cqe->flags;
        /* Seen first: a handler may submit, which never touches the CQ. */
        io_uring_cqe_seen(&s->ring, cqe);
        switch (ud_kind(ud)) {
        case UD_POLL: n = on_poll(p, ud, res, cflags, out, n); break;
        case UD_OP: on_op(p, ud, res, cflags); break;
        default: break; /* a removal or a cancellation */
        }
    }
    return n;
}

static int uring_wait(struct seda_poller *p, seda_poller_event_t *out, int max, int64_t timeout_ns)
{
    struct uring_impl *s = p->impl;
    s->completions = 0;
    int n = reap(p, out, max);
    if (n > 0 || s->completions > 0) {
        /* Without entering to wait, still hand the kernel what add, mod,
         * del and the handlers queued. */
        if (io_uring_sq_ready(&s->ring) > 0)
            io_uring_submit(&s->ring);
        return n;
    }
    for (struct seda__poller_bufring *br = s->bufrings; br != NULL; br = br->next)
        br->puts_at_enter = br->puts;
    int rc;
    if (timeout_ns == 0) {
        rc = io_uring_submit_and_get_events(&s->ring);
    } else {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = { .tv_sec = timeout_ns / 1000000000,
                                        .tv_nsec = timeout_ns % 1000000000 };
        rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, timeout_ns < 0 ? NULL : &ts, NULL);
    }
    n = reap(p, out, max);
    if (n > 0 || s->completions > 0)
        return n;
    if (rc == -EINTR)
        return -EINTR;
    if (rc >= 0 || rc == -ETIME || rc == -EAGAIN || rc == -EBUSY)
        return 0;
    return rc;
}

/* ---- teardown ----------------------------------------------------------- */

/* Operations whose request the kernel still holds. */
static uint32_t ops_in_kernel(const struct uring_impl *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->ops_cap; i++)
        n += s->ops[i].state == OP_ARMED || s->ops[i].state == OP_CANCELLED;
    return n;
}

static void uring_fini(struct seda_poller *p)
{
    struct uring_impl *s = p->impl;
    if (s->owned && pthread_equal(s->owner, pthread_self()) && ops_in_kernel(s) > 0) {
        /* Cancel every operation and wait for its last completion, so that
         * the kernel no longer touches memory we are about to unmap (recv
         * buffers) or the caller is about to free (send buffers). Poll
         * requests touch no memory of ours and end with the ring: they are
         * left alone (one cancel-all over thousands of them takes the kernel
         * most of a second). Bounded: cancelled requests end at once, and
         * the wait gives up after a second. */
        s->handler = NULL;
        s->closing = true;
        for (uint32_t i = 0; i < s->ops_cap; i++) {
            struct op *o = &s->ops[i];
            if (o->state == OP_STARVED) {
                op_free(s, i);
            } else if (o->state == OP_ARMED && reserve_sqes(s, 1) == 0) {
                struct io_uring_sqe *sqe = take_sqe(s);
                io_uring_prep_cancel64(sqe, make_ud(UD_OP, o->gen, i), 0);
                io_uring_sqe_set_data64(sqe, make_ud(UD_INTERNAL, 0, 0));
                o->state = OP_CANCELLED;
            }
        }
        seda_poller_event_t scratch[64];
        int64_t deadline = seda__now_ns() + 1000000000;
        while (ops_in_kernel(s) > 0 && seda__now_ns() < deadline) {
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 10000000 };
            io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
            reap(p, scratch, 64);
        }
    }
    /* Another thread destroys only once the owner has exited, and a
     * thread's requests end when it exits. */
    io_uring_queue_exit(&s->ring);
    while (s->bufrings != NULL) {
        struct seda__poller_bufring *br = s->bufrings;
        s->bufrings = br->next;
        bufring_unmap(br);
    }
    free(s->ops);
    free(s);
    p->impl = NULL;
}

static const struct seda__poller_completion_ops uring_completion_ops = {
    .set_handler = uring_set_handler,
    .bufring_create = uring_bufring_create,
    .bufring_destroy = uring_bufring_destroy,
    .buffer_put = uring_buffer_put,
    .buffer_addr = buffer_addr,
    .buffer_size = buffer_size,
    .accept = uring_accept,
    .recv = uring_recv,
    .send = uring_send,
    .cancel = uring_cancel,
};

const struct seda__poller_ops seda__poller_uring_ops = {
    .backend = SEDA_POLLER_IO_URING,
    .trigger = SEDA_POLLER_EDGE,
    .init = uring_init,
    .fini = uring_fini,
    .enter = uring_enter_hook,
    .add = uring_add,
    .mod = uring_mod,
    .del = uring_del,
    .wait = uring_wait,
    .completion = &uring_completion_ops,
};
