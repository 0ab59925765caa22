/*
 * Private to the C core: the poller's ops table, one implementation per file
 * (poller_select.c, poller_poll.c, poller_epoll.c, poller_uring.c), and what
 * poller.c (dispatch, backend choice, the descriptor table) shares with them.
 *
 * Layering: poller.c validates every call (descriptor range, event bits,
 * registered or not, the io_uring owner thread through ops->enter) and keeps
 * the descriptor table (udata, interest, generation) that every backend
 * reads; a backend only talks to its kernel interface. No liburing type
 * appears here: poller_uring.c keeps its ring to itself.
 *
 * Completion operations (docs/design/io.md section 2): a backend that can do
 * the I/O itself, not just report readiness, offers `completion` (io_uring);
 * the readiness backends leave it NULL and the socket layer then reads and
 * writes on readiness. Completions are handed to a callback during wait.
 */
#ifndef SEDA_POLLER_PRIVATE_H
#define SEDA_POLLER_PRIVATE_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifndef POLLRDHUP
#error "define _GNU_SOURCE before including poller.h (POLLRDHUP)"
#endif

#include "seda/poller.h"

struct seda_poller;

/* Interest bits a registration may carry; ERR and HUP are always implied. */
#define SEDA__POLLER_INTEREST (SEDA_POLLER_IN | SEDA_POLLER_OUT | SEDA_POLLER_RDHUP)
#define SEDA__POLLER_ALL (SEDA__POLLER_INTEREST | SEDA_POLLER_ERR | SEDA_POLLER_HUP)

/* One slot per descriptor number, owned by poller.c, read by the backends. */
struct seda__poller_fd {
    void *udata;
    uint32_t events;     /* interest (SEDA__POLLER_INTEREST bits) */
    uint32_t gen;        /* bumped at every add, mod and del (io_uring drops
                          * completions of older generations) */
    uint32_t registered; /* 1 between add and del */
    uint32_t slot;       /* backend's: poll's index in its pollfd array */
    uint32_t stamp;      /* backend's: io_uring's wait number that last */
    uint32_t out_index;  /*   reported fd, and where (merges two completions) */
};

/* ---- completion operations (io_uring; NULL elsewhere) ------------------- */

enum seda__poller_op_kind {
    SEDA__POLLER_OP_ACCEPT = 1, /* multishot accept on a listener */
    SEDA__POLLER_OP_RECV = 2,   /* multishot recv into a buffer ring */
    SEDA__POLLER_OP_SEND = 3,   /* one send */
};

/* A completion's flags. */
#define SEDA__POLLER_MORE 1u /* the operation stays armed: more completions follow */

struct seda__poller_completion {
    void *udata;    /* as given when the operation was started */
    uint64_t op;    /* its handle */
    int kind;       /* enum seda__poller_op_kind */
    int fd;         /* the descriptor it runs on */
    int32_t res;    /* ACCEPT: the new descriptor (non-blocking, close-on-exec);
                    * RECV: bytes received, 0 at end of stream; SEND: bytes
                    * sent (may be short: send the rest again); or -errno */
    uint32_t flags; /* SEDA__POLLER_MORE */
    void *buf;      /* RECV with res > 0: the bytes, in buffer buf_id of the
                      * operation's ring; owned by the handler until it hands
                      * the buffer back (buffer_put) */
    uint16_t buf_id;
};

/*
 * Called by wait for each completion, on the owner thread. It may start and
 * cancel operations and put buffers back, but must not call wait. After a
 * completion without SEDA__POLLER_MORE the handle is dead.
 */
typedef void (*seda__poller_completion_fn)(void *ctx, const struct seda__poller_completion *c);

/* Provided buffers for multishot recv: `count` buffers of `size` bytes. */
struct seda__poller_bufring;

/* Every operation below runs on the poller's owner thread only: they share
 * the ring with add, mod, del and wait. */
struct seda__poller_completion_ops {
    /* Sets the completion handler (NULL: completions are dropped, buffers
     * put back). Before starting any operation. */
    void (*set_handler)(struct seda_poller *p, seda__poller_completion_fn fn, void *ctx);

    /*
     * A ring of `count` buffers (a power of two, 1..32768) of `size` bytes
     * each (1..1 GiB / count), registered with the kernel. The ring and the
     * buffers are memory we map (liburing 2.3 has no io_uring_setup_buf_ring).
     * Returns 0; -EINVAL; -ENOMEM; -ENOSPC (no buffer group id left); or the
     * kernel's error.
     */
    int (*bufring_create)(struct seda_poller *p, uint32_t count, uint32_t size,
                          struct seda__poller_bufring **out);
    /* Unregisters and unmaps. No recv may still use it; every buffer handed
     * out is forgotten. */
    void (*bufring_destroy)(struct seda_poller *p, struct seda__poller_bufring *br);
    /* Hands buffer `id` back to the kernel. A recv that stopped for lack of
     * buffers (-ENOBUFS) is re-armed once buffers come back, not before. */
    void (*buffer_put)(struct seda_poller *p, struct seda__poller_bufring *br, uint16_t id);
    /* The address of buffer id, and the size of every buffer. */
    void *(*buffer_addr)(const struct seda__poller_bufring *br, uint16_t id);
    uint32_t (*buffer_size)(const struct seda__poller_bufring *br);

    /*
     * Multishot accept on listener fd: one completion per connection (res =
     * the new descriptor). The operation is re-armed by the poller when the
     * kernel ends it with a success; an error (-EMFILE, -ENFILE, ...) ends
     * it, without SEDA__POLLER_MORE: start it again when it makes sense.
     * Returns 0 and the handle in *op; -ENOMEM.
     */
    int (*accept)(struct seda_poller *p, int fd, void *udata, uint64_t *op);

    /*
     * Multishot recv on fd into buffers of br: one completion per received
     * chunk (res bytes in buf). -ENOBUFS is not delivered: the recv waits,
     * still armed, until a buffer of br is put back. End of stream (res 0) and
     * errors end it. Returns 0 and the handle in *op; -ENOMEM.
     */
    int (*recv)(struct seda_poller *p, int fd, struct seda__poller_bufring *br, void *udata,
                uint64_t *op);

    /*
     * One send of len bytes from buf (MSG_NOSIGNAL). buf must stay valid and
     * unchanged until the completion. Returns 0 and the handle in *op; -ENOMEM.
     */
    int (*send)(struct seda_poller *p, int fd, const void *buf, uint32_t len, void *udata,
                uint64_t *op);

    /*
     * Stops an accept or recv: no completion for op is delivered after this
     * returns (buffers the kernel fills meanwhile are put back by the poller).
     * Returns 0; -ENOENT (no such live operation); -EBUSY for a send (the
     * kernel owns its buffer until it completes: shut the socket down
     * instead, and wait for the completion).
     */
    int (*cancel)(struct seda_poller *p, uint64_t op);
};

/* ---- the backend interface ---------------------------------------------- */

struct seda__poller_ops {
    int backend; /* enum seda_poller_backend */
    int trigger; /* enum seda_poller_trigger */
    /* Sets up p->impl and p->describe. Returns 0 or -errno. */
    int (*init)(struct seda_poller *p, const seda_poller_options_t *opts);
    /* Frees what init made. Registered descriptors are not closed. */
    void (*fini)(struct seda_poller *p);
    /* Claims or checks the owner thread (io_uring only; NULL elsewhere).
     * Returns 0 or -EBUSY. Called before each add, mod, del and wait, and
     * before each completion operation. */
    int (*enter)(struct seda_poller *p);
    /* p->fds[fd] holds the new registration (events, udata, gen) when add and
     * mod are called, and still the old one when del is called. On failure
     * poller.c restores the table. */
    int (*add)(struct seda_poller *p, int fd);
    int (*mod)(struct seda_poller *p, int fd, uint32_t old_events);
    int (*del)(struct seda_poller *p, int fd);
    /* As seda_poller_wait, arguments checked; may return 0 before the
     * timeout (poller.c waits again for what is left). */
    int (*wait)(struct seda_poller *p, seda_poller_event_t *out, int max, int64_t timeout_ns);
    /* NULL for readiness-only backends. */
    const struct seda__poller_completion_ops *completion;
};

extern const struct seda__poller_ops seda__poller_select_ops;
extern const struct seda__poller_ops seda__poller_poll_ops;
extern const struct seda__poller_ops seda__poller_epoll_ops;
extern const struct seda__poller_ops seda__poller_uring_ops;

struct seda_poller {
    const struct seda__poller_ops *ops;
    void *impl;                  /* the backend's state */
    struct seda__poller_fd *fds; /* indexed by descriptor number */
    uint32_t fds_cap;            /* slots in fds */
    int count;                   /* registered descriptors */
    int fallback_error;          /* io_uring's refusal, or 0 */
    char describe[96];
};

/* The completion operations of p's backend, or NULL. */
static inline const struct seda__poller_completion_ops *
seda__poller_completion(const struct seda_poller *p)
{
    return p->ops->completion;
}

/* Calls the backend's enter hook (owner check) where it has one. */
static inline int seda__poller_enter(struct seda_poller *p)
{
    return p->ops->enter ? p->ops->enter(p) : 0;
}

/*
 * One wait for the worker loop, without seda_poller_wait's checks and
 * without its loop: may return 0 before the timeout (a stale io_uring
 * completion, or only completions delivered to the handler), which a loop
 * that checks its timers and queues anyway does not mind. out != NULL,
 * max >= 1, timeout_ns < 0 (no limit), 0, or a relative time.
 */
static inline int seda__poller_wait_once(struct seda_poller *p, seda_poller_event_t *out, int max,
                                         int64_t timeout_ns)
{
    int rc = seda__poller_enter(p);
    return rc < 0 ? rc : p->ops->wait(p, out, max, timeout_ns < 0 ? -1 : timeout_ns);
}

/* poll(2)'s bits for an interest, and Seda's for poll(2)'s revents (masked
 * to interest | ERR | HUP; POLLNVAL, a closed descriptor, becomes ERR). */
static inline short seda__poller_to_poll(uint32_t events)
{
    short m = 0;
    if (events & SEDA_POLLER_IN)
        m |= POLLIN;
    if (events & SEDA_POLLER_OUT)
        m |= POLLOUT;
    if (events & SEDA_POLLER_RDHUP)
        m |= POLLRDHUP;
    return m;
}

static inline uint32_t seda__poller_from_poll(uint32_t revents, uint32_t interest)
{
    uint32_t e = 0;
    if (revents & POLLIN)
        e |= SEDA_POLLER_IN;
    if (revents & POLLOUT)
        e |= SEDA_POLLER_OUT;
    if (revents & (POLLERR | POLLNVAL))
        e |= SEDA_POLLER_ERR;
    if (revents & POLLHUP)
        e |= SEDA_POLLER_HUP;
    if (revents & POLLRDHUP)
        e |= SEDA_POLLER_RDHUP;
    return e & (interest | SEDA_POLLER_ERR | SEDA_POLLER_HUP);
}

/* A relative timeout in nanoseconds as a timespec (t >= 0). */
static inline struct timespec seda__poller_timespec(int64_t t)
{
    struct timespec ts = { .tv_sec = t / 1000000000, .tv_nsec = t % 1000000000 };
    return ts;
}

#endif /* SEDA_POLLER_PRIVATE_H */
