/*
 * Private to the socket layer (include/seda/socket.h is the contract;
 * docs/design/io.md section 3 the why). One job per file:
 *
 *   socket_io.c       the per-loop state: creation on first use, the event,
 *                     buffer and output-item pools, delivery of events into
 *                     sinks (and waiting when a sink is full), event release,
 *                     statistics, stopping with the loop
 *   socket_listen.c   listeners: sockets, accepting (readiness or io_uring
 *                     multishot accept), EMFILE pauses, suspend/resume, the
 *                     connection limit, the hand-off mode
 *   socket_conn.c     a connection's life: setup on its loop, references,
 *                     calls from other threads (posted requests), closing,
 *                     idle timeouts, readiness dispatch
 *   socket_read.c     reading: readiness (budget, ready list, starved list)
 *                     and io_uring multishot recv; read stop/start
 *   socket_write.c    the output queue: copies, zero-copy buffers, files,
 *                     marks, half-close; watermarks and the hard limit; the
 *                     flush (sendmsg, or one io_uring send per connection)
 *   socket_connect.c  outgoing connections and their timeout
 *
 * Ownership: a connection and its socket belong to one loop (conn->loop);
 * only that loop's thread reads or writes the fields below marked "owner".
 * Other threads touch only the atomics: refs, user, queued (a snapshot).
 */
#ifndef SEDA_SOCKET_INTERNAL_H
#define SEDA_SOCKET_INTERNAL_H

#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "loop.h"
#include "seda/socket.h"

/* Bytes per pooled buffer: a received packet, or a chunk of copied output. */
#define SEDA__IO_BUF_SIZE 16384
/* Readiness backends: read buffers a loop lends out at once (packets the
 * application has not released). Past it, connections wait for buffers to
 * come back (the starved list): input memory is bounded like io_uring's
 * ring. 2048 x 16 KiB = 32 MiB per loop. */
#define SEDA__IO_READ_BUFS_MAX 2048
/* io_uring: provided buffers per loop ring (8 MiB). */
#define SEDA__IO_RING_BUFS 512
/* Receives per connection per poll before the others get their turn. */
#define SEDA__IO_READ_BUDGET 4
/* iovecs per sendmsg (IOV_MAX is 1024 here; a flush loops for more). */
#define SEDA__IO_IOV 64
/* EMFILE/ENFILE: accepting pauses this long. */
#define SEDA__IO_EMFILE_PAUSE_NS 500000000LL
/* A full sink is retried this often while the loop has nothing else to do. */
#define SEDA__IO_STALL_RETRY_NS 1000000LL

struct seda__io;
struct seda__listen_part;

/* ---- events --------------------------------------------------------------- */

struct seda__io_event {
    seda_io_event_t pub;    /* first: the public pointer is this one */
    struct seda__task task; /* a release from another thread, posted to the owner */
    struct seda__io *io;
    struct seda__io_event *next; /* free list, or a connection's pending list */
    /* Where it goes: NULL for the connection's sink (resolved at delivery). */
    seda_stage_t *dest;
    /* The connection reference the event holds: pub.conn, or for
     * CONNECT_FAILED (pub.conn NULL) the connection that failed. */
    seda_conn_t *hold;
    void *buf;       /* a pooled buffer (readiness PACKET), or NULL */
    int32_t ring_id; /* an io_uring provided buffer (PACKET), or -1 */
};

static inline struct seda__io_event *seda__io_event_of(seda_io_event_t *ev)
{
    return (struct seda__io_event *)ev;
}

/* ---- output items ------------------------------------------------------------ */

enum seda__out_kind {
    SEDA__OUT_COPY = 1,     /* bytes in a pooled buffer the connection owns */
    SEDA__OUT_REF = 2,      /* the caller's bytes (zero copy), released when sent */
    SEDA__OUT_FILE = 3,     /* a file region, sendfile(2) */
    SEDA__OUT_MARK = 4,     /* WRITE_DONE(tag) when reached */
    SEDA__OUT_SHUTDOWN = 5, /* shutdown(SHUT_WR) when reached */
};

struct seda__out {
    struct seda__out *next;
    uint8_t kind;
    /* COPY, REF: the bytes still to send. COPY appends after ptr + len. */
    const uint8_t *ptr;
    size_t len;
    void *base;                    /* COPY: the pooled buffer; REF: the caller's */
    seda_write_release_fn release; /* REF, FILE */
    void *ctx;
    int fd;             /* FILE */
    uint64_t off, flen; /* FILE: where, and bytes left */
    uint64_t tag;       /* MARK */
};

/* ---- connections ------------------------------------------------------------- */

enum seda__conn_flag {
    SEDA__C_READING = 1u << 0,    /* the application wants input */
    SEDA__C_STALLED = 1u << 1,    /* events wait for a full sink: input paused */
    SEDA__C_EOF = 1u << 2,        /* end of stream read (or input failed) */
    SEDA__C_RDHUP = 1u << 3,      /* the poller saw the peer's FIN: read to the end */
    SEDA__C_READY = 1u << 4,      /* on the loop's ready list */
    SEDA__C_STARVED = 1u << 5,    /* on the loop's starved list (no read buffer) */
    SEDA__C_FLUSH = 1u << 6,      /* a flush is deferred */
    SEDA__C_OUT_WAIT = 1u << 7,   /* output waits for writability */
    SEDA__C_UNWRITABLE = 1u << 8, /* above the high watermark (UNWRITABLE sent) */
    SEDA__C_CLOGGED = 1u << 9,    /* refused a write past the hard limit (NOTIFY) */
    SEDA__C_WR_SHUT = 1u << 10,   /* no more writes (shutdown queued or done) */
    SEDA__C_CLOSING = 1u << 11,   /* close after flush */
    SEDA__C_CLOSED = 1u << 12,    /* closed: no socket; events may still wait */
    SEDA__C_CONNECTING = 1u << 13,
    SEDA__C_WATCHED = 1u << 14,       /* registered in the poller */
    SEDA__C_STALL_LISTED = 1u << 15,  /* on the loop's stalled list */
    SEDA__C_OPEN = 1u << 16,          /* counted in connections_open, on io->conns */
    SEDA__C_FINISHING = 1u << 17,     /* io_uring: closed, waiting for its operations' ends */
    SEDA__C_DONE = 1u << 18,          /* finished: the loop's reference is gone (or going) */
    SEDA__C_INPUT_ON = 1u << 19,      /* edge backends: input was active at the last update */
    SEDA__C_RECV_STOPPING = 1u << 20, /* io_uring: the recv was stopped, its end is due */
    SEDA__C_COUNTED = 1u << 21,       /* io_uring: counted in the loop's watchers */
    /* io_uring: delivered its budget of packets this poll; more are held on
     * the pending list and the recv is stopped until the ready list's turn. */
    SEDA__C_BUDGET = 1u << 22,
};

/* io_uring: a vectored send in flight (the kernel reads msg and iov until
 * it completes); allocated on a connection's first one. */
struct seda__uring_send {
    struct msghdr msg;
    struct iovec iov[SEDA__IO_IOV];
};

/* The peer's address: TCP over IPv4 or IPv6 (listen and connect take no
 * other family). A sockaddr_storage would cost 100 bytes more per
 * connection. */
union seda__peer_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* Ordered so that no field pads: an idle connection costs this struct
 * (issue 10 measures memory per idle connection). */
struct seda_conn {
    struct seda__watcher w; /* w.fd: the socket (-1 once closed) */
    struct seda__loop *loop;
    struct seda__io *io; /* the owner loop's state */
    /* References: the loop's while open or while operations run, one per
     * event, one per posted request, the application's. */
    _Atomic uint32_t refs;
    uint32_t thread; /* the owner loop's index */
    uint64_t id;
    _Atomic(void *) user;
    void (*user_destroy)(void *user);
    /* Bytes of memory queued for output (owner writes; others read relaxed). */
    _Atomic size_t queued;

    /* Owner from here on. */
    uint32_t flags;            /* enum seda__conn_flag */
    uint32_t interest;         /* level backends: what the poller watches */
    seda_stage_t *sink;        /* a reference; NULL until set */
    seda_listener_t *listener; /* a reference while counted in its connections */
    seda_conn_options_t o;     /* resolved */
    uint64_t seq;              /* next PACKET's number */
    int close_error;           /* for CLOSED */
    uint32_t pend_out;         /* output events among the pending ones (below) */

    /* Lists of the loop (owner). */
    struct seda_conn *prev, *next; /* io->conns */
    /* io->ready or io->starved (a reference each; a closed connection is
     * skipped when its turn comes). */
    struct seda_conn *ready_next;
    struct seda_conn *stall_next; /* io->stalled */

    /* Events waiting for a full (or unset) sink, or held past the receive
     * budget, oldest first; pend_out of them are output events. */
    struct seda__io_event *pend_head, *pend_tail;

    /* Output. */
    struct seda__out *out_head, *out_tail;
    struct seda__task flush_task;

    /* io_uring. */
    uint64_t recv_op;               /* 0: none armed */
    uint64_t recv_poll;             /* the loop's poll count at the last receive */
    uint64_t send_op;               /* 0: no send in flight */
    size_t send_len;                /* bytes the send in flight carries */
    struct seda__uring_send *usend; /* a vectored send's msghdr and iovecs */
    uint32_t recv_turn;             /* receives in that poll */
    socklen_t peer_len;

    /* Timers. */
    struct seda__loop_timer idle_timer;
    int64_t idle_deadline; /* pushed by activity (one store) */
    struct seda__loop_timer connect_timer;
    uint64_t connect_tag;
    int64_t connect_ns; /* the connect's timeout, 0: none */

    /* Setup on the owner loop (hand-off, connect), and the loop's reference
     * dropped after the current iteration (never under a dispatch). */
    struct seda__task setup_task;
    struct seda__task release_task;
    union seda__peer_addr peer;
};

/* ---- listeners ------------------------------------------------------------- */

/* One listening socket and the loop that accepts on it (owner: that loop,
 * except resume_posted). */
struct seda__listen_part {
    struct seda__watcher w; /* w.fd: the listening socket */
    seda_listener_t *ls;
    struct seda__loop *loop;
    struct seda__io *io;                 /* a reference once started */
    struct seda__listen_part *next;      /* io->parts */
    struct seda__loop_timer pause_timer; /* EMFILE */
    uint64_t accept_op;                  /* io_uring multishot accept armed, 0: none */
    uint32_t live_ops;                   /* accept operations whose last completion is due */
    bool started;                        /* its start ran on its loop */
    bool watching;                       /* readiness: registered in the poller */
    bool suspended;                      /* by the application */
    bool paused_emfile;
    bool paused_max;
    bool closed;
    bool finishing;             /* counted in io->finishing */
    bool done;                  /* its listener reference is gone */
    bool logged;                /* this EMFILE episode was logged */
    bool multishot;             /* io_uring accept operation, not readiness */
    _Atomic bool resume_posted; /* a resume after the limit is on its way */
};

struct seda_listener {
    _Atomic uint32_t refs;
    seda_runtime_t *rt;
    uint16_t port;
    int mode;                  /* enum seda_accept_mode */
    seda_stage_t *accept_sink; /* references */
    seda_stage_t **read_sinks; /* one per loop (the same one repeated), or NULL */
    seda_conn_options_t conn;
    uint32_t max; /* 0: no limit */
    seda_io_log_fn log;
    void *log_ctx;
    /* Connections open now (pairs with max_paused: see socket_listen.c). */
    _Atomic uint32_t open;
    _Atomic uint32_t max_paused; /* parts paused at the limit */
    _Atomic uint32_t next_loop;  /* hand-off: round robin */
    _Atomic bool closed;
    uint32_t nparts;
    struct seda__listen_part parts[];
};

/* ---- the per-loop state ------------------------------------------------------ */

struct seda__slab {
    struct seda__slab *next;
};

struct seda__io {
    struct seda__loop *loop;
    /* The loop's reference, one per connection and listening part alive:
     * the state outlives the loop while events are still held. */
    _Atomic uint32_t refs;
    /* Once the loop has stopped, its pools are shared by every thread that
     * releases an event: under this lock. `stopped` is written under it. */
    pthread_mutex_t lock;
    bool stopped;
    bool edge;                                       /* the poller is edge-triggered */
    const struct seda__poller_completion_ops *uring; /* or NULL */
    struct seda__poller_bufring *ring;

    /* Pools (owner; under lock once stopped). */
    struct seda__io_event *free_events;
    void *free_bufs; /* a free buffer holds the next one's address */
    struct seda__out *free_outs;
    struct seda__slab *slabs; /* everything allocated, freed with the state */
    uint32_t read_bufs_out;   /* readiness read buffers lent out */
    uint32_t finishing;       /* closed connections and listening sockets
                                * waiting for their io_uring operations' ends */

    /* Lists (owner). */
    struct seda_conn *conns;                       /* open connections */
    struct seda_conn *ready_head, *ready_tail;     /* input left for the next turn */
    struct seda_conn *starved_head, *starved_tail; /* waiting for a read buffer */
    struct seda_conn *stalled;                     /* events waiting for full sinks */
    struct seda__loop_timer stall_timer;
    struct seda__listen_part *parts;

    /* The statistics: &loop->io_st (loop.h says why they live there). */
    struct seda__io_counters *st;
    int64_t now;       /* the clock, read once per poll (seda__io_clock) */
    uint64_t now_wait; /* the loop's `waits` when `now` was read */
    uint64_t polls;    /* polls so far (receive budgets are per poll) */
};

/* ---- socket_io.c -------------------------------------------------------------- */

/* The calling loop's state, created on first use. Owner. NULL without memory. */
struct seda__io *seda__io_get(struct seda__loop *l);
/* The loop's state if it has one (any thread: acquire load). */
struct seda__io *seda__io_peek(const struct seda__loop *l);
void seda__io_ref(struct seda__io *io);
void seda__io_unref(struct seda__io *io);

static inline void seda__io_count(_Atomic uint64_t *c, uint64_t by)
{
    /* Only the owner writes: load + store; statistics read relaxed. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/* An event of the given type for c (a reference on c taken if c != NULL).
 * NULL without memory. Owner. */
struct seda__io_event *seda__io_event_new(struct seda__io *io, uint32_t type, seda_conn_t *c);
/* Sends ev to its destination (ev->dest, else c's sink), or keeps it on c's
 * pending list behind earlier ones when the sink is full or unset. A closed
 * sink closes c and releases ev. Owner. */
void seda__conn_deliver(seda_conn_t *c, struct seda__io_event *ev);
/* Retries c's pending events, at most max_packets PACKETs of them. Returns
 * SEDA__PEND_EMPTY (none left), SEDA__PEND_BUDGET (max_packets went, more
 * wait) or SEDA__PEND_FULL (the sink is full or unset). Owner. */
enum { SEDA__PEND_FULL = -1, SEDA__PEND_BUDGET = 0, SEDA__PEND_EMPTY = 1 };
int seda__conn_deliver_pending(seda_conn_t *c, uint32_t max_packets);
/* Appends ev to c's pending list (in order, not tried). Owner. */
void seda__conn_hold(seda_conn_t *c, struct seda__io_event *ev);
/* c's pending events wait for a full sink: the stalled list, input off. */
void seda__conn_stall(seda_conn_t *c);

/* A pooled buffer of SEDA__IO_BUF_SIZE bytes, or NULL without memory. Owner. */
void *seda__io_buf_get(struct seda__io *io);
void seda__io_buf_put(struct seda__io *io, void *buf);
struct seda__out *seda__io_out_get(struct seda__io *io);
void seda__io_out_put(struct seda__io *io, struct seda__out *o);

/* The clock now (refreshed per poll; cheap). */
int64_t seda__io_now(struct seda__io *io);
/* Before handling what a wait in the poller brought (readiness, io_uring
 * completions): reads the clock if this wait has not yet, so that activity
 * after a long sleep moves idle deadlines from now, not from before the
 * sleep. One compare per call, one clock read per wait. Owner. */
void seda__io_read_clock(struct seda__io *io);
static inline void seda__io_clock(struct seda__io *io)
{
    if (SEDA__UNLIKELY(io->now_wait != io->loop->waits))
        seda__io_read_clock(io);
}

/* Logs one line through fn (NULL: stderr). */
void seda__io_log(seda_io_log_fn fn, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- socket_conn.c ------------------------------------------------------------ */

/* A connection for socket fd, owned by loop l (not set up yet). NULL
 * without memory. Any thread. */
seda_conn_t *seda__conn_new(struct seda__loop *l, int fd, const seda_conn_options_t *o);
/* Puts c (c->io set) on its loop's list of open connections. Owner. */
void seda__conn_link(seda_conn_t *c);
/* Sets up c on its loop (owner): registers the socket, starts reading if
 * it has a sink. ACCEPTED / CONNECTED go out first. Returns 0 or -errno (c
 * is then closed). */
int seda__conn_start(seda_conn_t *c, struct seda__io_event *first);
/* Stops reading, flushes, then closes (CLOSED, error 0). Returns 0 or
 * -EPIPE (closed already). Owner. */
int seda__conn_close_after_flush(seda_conn_t *c);
/* Closes c now with `error` for CLOSED. Idempotent. Owner. */
void seda__conn_close_now(seda_conn_t *c, int error);
/* Notes activity for the idle timeout (one store; saturates: a timeout
 * near INT64_MAX means never, not a deadline wrapped into the past). Owner. */
static inline void seda__conn_touch(seda_conn_t *c)
{
    int64_t t = c->o.idle_timeout_ns;
    if (t > 0)
        c->idle_deadline = c->io->now > INT64_MAX - t ? INT64_MAX : c->io->now + t;
}
/* Checks connection options and fills in defaults. Returns 0 or -EINVAL. */
int seda__conn_options_resolve(const seda_conn_options_t *in, seda_conn_options_t *out);
/* Whether the caller is c's loop thread. */
static inline bool seda__conn_on_owner(const seda_conn_t *c)
{
    return seda__loop_current() == c->loop;
}
/* A connection's registration (readiness backends): re-registers when the
 * wanted interest changed (level backends). Owner. */
void seda__conn_update_interest(seda_conn_t *c);
/* Frees a closed connection's remains once its io_uring operations ended. */
void seda__conn_maybe_finish(seda_conn_t *c);

/* ---- socket_read.c ------------------------------------------------------------ */

/* Whether c should be reading now. */
static inline bool seda__conn_wants_input(const seda_conn_t *c)
{
    return (c->flags & (SEDA__C_READING | SEDA__C_STALLED | SEDA__C_EOF | SEDA__C_CLOSING |
                        SEDA__C_CLOSED | SEDA__C_CONNECTING | SEDA__C_BUDGET)) == SEDA__C_READING &&
           c->sink != NULL;
}
/* Readiness: reads what c has, within the budget. Owner. */
void seda__conn_read(seda_conn_t *c);
/* Starts or stops input to match seda__conn_wants_input. Owner. */
void seda__conn_input_update(seda_conn_t *c);
/* io_uring recv completion. Owner. */
void seda__conn_recv_complete(seda_conn_t *c, const struct seda__poller_completion *cp);
/* Puts c on the ready list (served after the next poll, which then does
 * not block). Owner. */
void seda__conn_ready_push(seda_conn_t *c);
/* After each poll: connections with input left, starved ones with buffers
 * back. */
void seda__io_serve_ready(struct seda__io *io);

/* ---- socket_write.c ----------------------------------------------------------- */

/* Flushes c's output now (readiness: sendmsg until done or EAGAIN;
 * io_uring: one send in flight). Owner. */
void seda__conn_flush(seda_conn_t *c);
/* Schedules a flush before the loop next polls. Owner. */
void seda__conn_flush_later(seda_conn_t *c);
/* io_uring send completion. Owner. */
void seda__conn_send_complete(seda_conn_t *c, const struct seda__poller_completion *cp);
/* Drops every queued item (release callbacks get `status`). Owner. */
void seda__conn_drop_output(seda_conn_t *c, int status);
/* The owner-thread halves of the public calls. */
int seda__conn_write_ref(seda_conn_t *c, const void *buf, size_t len, seda_write_release_fn release,
                         void *ctx);
int seda__conn_write_copy(seda_conn_t *c, const void *buf, size_t len);
int seda__conn_write_file(seda_conn_t *c, int fd, uint64_t off, uint64_t len,
                          seda_write_release_fn release, void *ctx);
int seda__conn_write_mark(seda_conn_t *c, uint64_t tag);
int seda__conn_write_shutdown(seda_conn_t *c);

/* ---- socket_listen.c ---------------------------------------------------------- */

/* The loop stops: closes its listening sockets. Owner. */
void seda__listen_stop_loop(struct seda__io *io);
/* A connection of ls closed: count it, resume paused loops. Any thread. */
void seda__listener_conn_closed(seda_listener_t *ls);
/* The read sink for a connection accepted on loop index i (no reference). */
seda_stage_t *seda__listener_read_sink(const seda_listener_t *ls, uint32_t i);

/* ---- socket_connect.c --------------------------------------------------------- */

/* Connect readiness (OUT/ERR) of a connecting c. Owner. */
void seda__conn_connect_ready(seda_conn_t *c, uint32_t events);

/* ---- address parsing (socket_listen.c) ------------------------------------------ */

/* host (numeric; NULL: 0.0.0.0) and port into *ss. Returns 0 or -EINVAL. */
int seda__sockaddr_parse(const char *host, uint16_t port, struct sockaddr_storage *ss,
                         socklen_t *len);

#endif /* SEDA_SOCKET_INTERNAL_H */
