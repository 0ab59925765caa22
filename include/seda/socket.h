/*
 * The socket layer (Sandstorm's aSocket; docs/design/io.md section 3):
 * listening, accepting, reading, writing, connecting and closing TCP
 * connections on the runtime's worker loops, with every result delivered
 * as an event into a stage the application chose.
 *
 *     seda_listen_options_t lo = { .host = "127.0.0.1", .port = 0,
 *                                  .read_sink = echo_stage };
 *     seda_listener_t *ls;
 *     seda_listen(rt, &lo, &ls);            // seda_listener_port(ls): the port
 *     ...
 *     // echo_stage's handler:
 *     seda_io_event_t *ev = events[i];
 *     if (ev->type == SEDA_IO_PACKET)
 *         seda_conn_write_copy(ev->conn, ev->data, ev->len);
 *     seda_io_event_release(ev);   // releasing READ_EOF closes, after the flush
 *
 * Threads and ownership. A connection belongs to the worker loop (shared
 * thread) that accepted or connected it: only that thread touches its
 * socket and its state, without a lock. Every seda_conn_* call may be made
 * from any thread; on the owner thread it acts at once (a write appends to
 * the output queue with no system call, the loop flushes it before it next
 * polls); from another thread it is posted to the owner, in order with the
 * caller's other posted calls (a malloc per call: the slow path). A packet
 * read on loop W goes to its connection's sink; when that sink is a shared
 * stage bound to W (seda_stage_options_t.bind_to_thread), the handler runs
 * next on W and its writes go out with the next flush: per request one
 * receive, one send and a share of one poll, no cross-thread queue, no
 * wake-up, no malloc.
 *
 * Events. Each is a seda_io_event_t from the owner loop's free list, carried
 * through stage queues as a `void *` and owned by whoever holds it: the
 * handler that receives one calls seda_io_event_release (any thread) when
 * done, and so must the stage's drop callback. A connection's events reach
 * its sink in the order they happened; CLOSED is the last. When the sink is
 * full, the connection keeps its events (in order) and stops reading until
 * the sink takes them: backpressure, nothing is dropped. When the sink is
 * closed (destroyed, runtime stopping) the connection is closed and its
 * events are released.
 *
 * Accepting: one SO_REUSEPORT socket per loop (SEDA_ACCEPT_REUSEPORT, the
 * default), each loop accepting for itself, in parallel, with no post and no
 * wake-up per connection. The alternative, one socket on loop 0 handing
 * connections out in turn (SEDA_ACCEPT_HANDOFF), serialises accepting and
 * costs a cross-thread post per connection. On seda-bench echo (C server,
 * epoll, 2 threads, 64 B, five alternating runs on a shared 2-CPU machine)
 * the two were equal within the noise: medians 61.6k vs 46.6k messages/s at
 * 100 connections, 27.3k vs 28.0k at 1,000 (docs/design/io.md section 3), so
 * the choice rests on that structure. Hand-off stays for comparison.
 *
 * Errors are negative errno values; success is 0 or a count. If a call that
 * takes a callback fails, the callback is never called.
 */
#ifndef SEDA_SOCKET_H
#define SEDA_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_conn seda_conn_t;
typedef struct seda_listener seda_listener_t;

/* ---- events ------------------------------------------------------------ */

enum seda_io_event_type {
    /* A connection was accepted (the listener's accept_sink). Reading has
     * started if the connection has a sink, else it starts with
     * seda_conn_set_sink + seda_conn_read_start. */
    SEDA_IO_ACCEPTED = 1,
    /* Bytes received: data/len, seq. */
    SEDA_IO_PACKET = 2,
    /* The peer closed its writing side. Unless the connection allows
     * half-closure (seda_conn_options_t.half_close), it is closed after its
     * output is flushed once the application releases this event (so the
     * packets before it are answered); with half_close it stays open for
     * writing until the application closes it. */
    SEDA_IO_READ_EOF = 3,
    /* The connection is closed: the last event. error: 0 (closed by the
     * application), -ETIMEDOUT (idle timeout), -ENOBUFS (outgoing hard
     * limit, SEDA_CLOG_CLOSE), -EPIPE (runtime stopping), or the socket's
     * error (-ECONNRESET...). */
    SEDA_IO_CLOSED = 4,
    /* seda_connect succeeded (tag: the connect's tag). Reading has started. */
    SEDA_IO_CONNECTED = 5,
    /* seda_connect failed (tag; error: -ECONNREFUSED, -ETIMEDOUT,
     * -ENETUNREACH...). conn is NULL: there is no connection. */
    SEDA_IO_CONNECT_FAILED = 6,
    /* Queued output fell to the low watermark after UNWRITABLE. */
    SEDA_IO_WRITABLE = 7,
    /* Queued output reached the high watermark: stop writing until WRITABLE. */
    SEDA_IO_UNWRITABLE = 8,
    /* Everything written before seda_conn_write_mark(tag) has been sent. */
    SEDA_IO_WRITE_DONE = 9,
    /* A write would pass the hard limit (SEDA_CLOG_NOTIFY): that write and
     * every later one is refused with -ENOBUFS until output drains to the
     * low watermark (then WRITABLE; at once if it is there already: one
     * write larger than the whole limit). Once per episode. */
    SEDA_IO_CLOGGED = 10,
};

/*
 * An event. Read the fields; never write them. Owned by whoever holds it
 * until seda_io_event_release.
 */
typedef struct seda_io_event {
    uint32_t type; /* enum seda_io_event_type */
    int32_t error; /* CLOSED, CONNECT_FAILED: 0 or a negative errno */
    /* The connection (NULL for CONNECT_FAILED). The event holds a
     * reference: the pointer stays valid until the event is released
     * (seda_conn_retain to keep it longer). */
    seda_conn_t *conn;
    /* ACCEPTED: the listener (a reference held by the event). */
    seda_listener_t *listener;
    /* PACKET: the bytes, valid until the event is released. */
    const uint8_t *data;
    size_t len;
    /* PACKET: the connection's packet number, from 0. */
    uint64_t seq;
    /* WRITE_DONE: the mark's tag; CONNECTED, CONNECT_FAILED: the connect's. */
    uint64_t tag;
} seda_io_event_t;

/*
 * Gives an event back: the packet's buffer returns to the loop that read it
 * and the references the event holds are dropped. Any thread; on the owner
 * loop's thread it is a few stores, elsewhere a post to the owner (which
 * wakes it if it sleeps). After the runtime has stopped it frees directly.
 * NULL is ignored. Release every event before seda_runtime_destroy returns
 * memory: a PACKET's bytes are not readable after it.
 */
void seda_io_event_release(seda_io_event_t *ev);

/* The event type's name ("PACKET"...), or NULL. Static storage. */
const char *seda_io_event_name(uint32_t type);

/* ---- connection options -------------------------------------------------- */

enum seda_clog_policy {
    SEDA_CLOG_CLOSE = 0,  /* past the hard limit: close (CLOSED, -ENOBUFS) */
    SEDA_CLOG_NOTIFY = 1, /* past the hard limit: refuse the write, CLOGGED event */
};

/* Zero fields take the defaults. */
typedef struct seda_conn_options {
    /* Queued output (bytes in memory: copies and zero-copy buffers; file
     * regions count nothing) at which UNWRITABLE is delivered: 64 KiB. */
    size_t high_watermark;
    /* ... and at which WRITABLE follows: 32 KiB (must be <= high). */
    size_t low_watermark;
    /* The most output a connection may queue: 1 MiB (>= high). A write that
     * would pass it triggers the clog policy. A slow reader can therefore
     * never hold more than this much of the server's memory. */
    size_t hard_limit;
    int clog_policy; /* enum seda_clog_policy */
    /* Close the connection (CLOSED, -ETIMEDOUT) after this long without a
     * byte received or sent; 0: never. */
    int64_t idle_timeout_ns;
    /* Nonzero: leave Nagle's algorithm on (default: TCP_NODELAY set). */
    int nagle;
    /* Nonzero: after READ_EOF the connection stays open for writing until
     * the application closes it (default: closed after flush, see READ_EOF). */
    int half_close;
} seda_conn_options_t;

/* ---- listening ----------------------------------------------------------- */

enum seda_accept_mode {
    SEDA_ACCEPT_REUSEPORT = 0, /* one SO_REUSEPORT socket per loop (default) */
    SEDA_ACCEPT_HANDOFF = 1,   /* one socket on loop 0, connections handed out in turn */
};

/* A sink for the layer's warnings (one line, no newline). */
typedef void (*seda_io_log_fn)(void *ctx, const char *message);

typedef struct seda_listen_options {
    const char *host; /* numeric IPv4 or IPv6 address; NULL: "0.0.0.0" */
    uint16_t port;    /* 0: an ephemeral port (seda_listener_port) */
    int backlog;      /* listen(2) backlog; 0: 511 */
    int accept_mode;  /* enum seda_accept_mode */
    /* ACCEPTED events go here; NULL: none. */
    seda_stage_t *accept_sink;
    /* Where each accepted connection's events go, so that reading starts at
     * accept with no hop: read_sinks[i] for connections of shared thread i
     * (an array of seda_runtime_cpu_threads entries, e.g. one bound stage
     * per thread), else read_sink for all. With neither, a connection waits
     * for seda_conn_set_sink and seda_conn_read_start (accept_sink is then
     * required). The listener holds a reference to each. */
    seda_stage_t *read_sink;
    seda_stage_t *const *read_sinks;
    /* The most connections of this listener open at once; 0: no limit.
     * At the limit accepting pauses on every loop: further connections wait
     * in the kernel's backlog (and are refused by the kernel only when it
     * overflows), and accepting resumes as connections close. */
    uint32_t max_connections;
    seda_conn_options_t conn; /* for accepted connections */
    /* Warnings (out of descriptors: once per episode per loop). NULL: stderr. */
    seda_io_log_fn log;
    void *log_ctx;
} seda_listen_options_t;

/*
 * Starts listening. The sockets are created and bound on the calling
 * thread (so errors come back here), then each loop starts accepting on its
 * own. Out of descriptors (EMFILE, ENFILE) a loop stops accepting for 500
 * ms (nginx's way; never a busy loop), logging once per episode.
 * Returns 0 and a handle in *out (seda_listener_close it); -EINVAL (NULL
 * out or options, bad host, no sink at all, read_sinks with a NULL entry,
 * bad conn options); -EADDRINUSE; -EACCES; -EMFILE (also: the select
 * backend and a socket numbered FD_SETSIZE or more); -ENOMEM; -EPIPE (the
 * runtime is stopping). Any thread but the runtime's shared threads may
 * call it; a shared thread may too.
 */
int seda_listen(seda_runtime_t *rt, const seda_listen_options_t *opts, seda_listener_t **out);

/* The port the listener is bound to (the ephemeral one for port 0). Any thread. */
uint16_t seda_listener_port(const seda_listener_t *ls);

/*
 * Stops accepting on every loop (connections wait in the backlog) /
 * starts again. Asynchronous: each loop acts when its post runs. Returns 0
 * or -EPIPE (closed listener). Any thread.
 */
int seda_listener_suspend(seda_listener_t *ls);
int seda_listener_resume(seda_listener_t *ls);

/*
 * Stops accepting and closes the listening sockets (connections waiting in
 * their backlog are reset by the kernel); accepted connections stay open.
 * Drops the caller's handle. Any thread. NULL is ignored.
 */
void seda_listener_close(seda_listener_t *ls);

/* References for ACCEPTED events' listener field. Any thread. */
void seda_listener_retain(seda_listener_t *ls);
void seda_listener_release(seda_listener_t *ls);

/* Connections of this listener open now. Any thread (relaxed). */
uint32_t seda_listener_connections(const seda_listener_t *ls);

/* ---- connecting ------------------------------------------------------------ */

typedef struct seda_connect_options {
    const char *host; /* numeric IPv4 or IPv6 address (required) */
    uint16_t port;
    seda_stage_t *sink; /* CONNECTED / CONNECT_FAILED and every later event (required) */
    uint64_t tag;       /* echoed in CONNECTED / CONNECT_FAILED */
    int64_t timeout_ns; /* CONNECT_FAILED with -ETIMEDOUT after this; 0: none (the kernel's) */
    /* The owner loop: a shared thread index, or -1: the caller's loop if it
     * is a shared thread, else the loops in turn. */
    int thread;
    seda_conn_options_t conn;
} seda_connect_options_t;

/*
 * Starts a non-blocking connect on the chosen loop. The outcome arrives as
 * CONNECTED or CONNECT_FAILED on sink. Returns 0; -EINVAL (bad host, no
 * sink, bad thread, bad conn options); -ENOMEM; -EPIPE (runtime stopping).
 * Any thread.
 */
int seda_connect(seda_runtime_t *rt, const seda_connect_options_t *opts);

/* ---- connections ------------------------------------------------------------- */

/* A reference beyond the event's. Any thread. */
void seda_conn_retain(seda_conn_t *c);
void seda_conn_release(seda_conn_t *c);

/* The zero-copy write's release callback: status 0 when every byte was
 * sent, else a negative errno (the connection closed first). Called once, on
 * the owner loop's thread (or on the calling thread if the runtime has
 * stopped). */
typedef void (*seda_write_release_fn)(void *ctx, const void *buf, int status);

/*
 * Queues len bytes at buf without copying them: buf must stay valid and
 * unchanged until release(ctx, buf, status) is called. Returns 0 (queued;
 * from another thread: posted, and a later failure comes to the callback);
 * -EINVAL (NULL buf with len > 0, NULL release); -EPIPE (closed, or closing
 * after flush, or writing shut down); -ENOBUFS (SEDA_CLOG_NOTIFY and the
 * hard limit would be passed; with SEDA_CLOG_CLOSE the connection closes
 * and -EPIPE is returned). On failure release is never called.
 */
int seda_conn_write(seda_conn_t *c, const void *buf, size_t len, seda_write_release_fn release,
                    void *ctx);

/*
 * Copies len bytes into the connection's own output buffer (coalesced with
 * the copies before it: small writes make one iovec). Returns as
 * seda_conn_write. Suited to headers and small responses.
 */
int seda_conn_write_copy(seda_conn_t *c, const void *buf, size_t len);

/*
 * Queues `len` bytes of the open file fd from `offset`, sent with
 * sendfile(2) when its turn comes. fd must stay open until
 * release(ctx, NULL, status). File regions count nothing toward the output
 * limits (they hold no memory). Returns as seda_conn_write; -EINVAL also for
 * fd < 0.
 */
int seda_conn_sendfile(seda_conn_t *c, int fd, uint64_t offset, uint64_t len,
                       seda_write_release_fn release, void *ctx);

/* Asks for WRITE_DONE(tag) once everything queued before this call is sent. */
int seda_conn_write_mark(seda_conn_t *c, uint64_t tag);

/* Half-close: once everything queued is sent, shuts the writing side
 * (the peer reads end of stream); reading goes on. Later writes: -EPIPE. */
int seda_conn_shutdown_write(seda_conn_t *c);

enum seda_close_mode {
    SEDA_CLOSE_NOW = 0,         /* discard queued output (release callbacks get -ECANCELED) */
    SEDA_CLOSE_AFTER_FLUSH = 1, /* stop reading, send what is queued, then close */
};

/* Closes the connection; CLOSED (error 0) follows as its last event.
 * Returns 0 or -EPIPE (closed already; a repeated AFTER_FLUSH is 0). */
int seda_conn_close(seda_conn_t *c, int mode);

/* Flow control: stop / resume reading (io_uring: cancel / re-arm the
 * receive). Returns 0 or -EPIPE. */
int seda_conn_read_stop(seda_conn_t *c);
int seda_conn_read_start(seda_conn_t *c);

/* Sends this connection's later events to sink (a reference is taken).
 * Returns 0, -EINVAL (NULL sink) or -EPIPE. */
int seda_conn_set_sink(seda_conn_t *c, seda_stage_t *sink);

/* Changes the idle timeout (0: none). Returns 0, -EINVAL or -EPIPE. */
int seda_conn_set_idle_timeout(seda_conn_t *c, int64_t timeout_ns);

/* The application's pointer for this connection (NULL at first), and what
 * frees it: destroy(user) runs when the pointer is replaced (on the caller's
 * thread) or when the connection's memory goes (the last reference, on the
 * thread that drops it); NULL destroy: nothing is freed. Each set hands a
 * reference over: setting the pointer already set runs destroy on it (the
 * old value), so set a value once, or pass a new reference each time. Set it from one
 * thread at a time (the connection's handler, typically); read it from any
 * (release-store / acquire-load). */
void seda_conn_set_user(seda_conn_t *c, void *user, void (*destroy)(void *user));
void *seda_conn_user(const seda_conn_t *c);

/* The owner loop's shared thread index. Any thread. */
uint32_t seda_conn_thread(const seda_conn_t *c);

/* A number unique within the process (for logs). Any thread. */
uint64_t seda_conn_id(const seda_conn_t *c);

/* Bytes queued for output now (memory only). Exact on the owner thread,
 * a relaxed snapshot elsewhere. */
size_t seda_conn_queued(const seda_conn_t *c);

/* The peer's address as "ip:port" ("[ip6]:port") into buf (NUL-terminated).
 * Returns the length, -ENOTCONN, or -ENOSPC (buf too small; 48 bytes always
 * suffice). Any thread. */
int seda_conn_peer(const seda_conn_t *c, char *buf, size_t size);

/* ---- statistics -------------------------------------------------------------- */

/* What one loop's socket layer has done (relaxed counters). */
typedef struct seda_io_stats {
    uint64_t accepted;         /* connections accepted */
    uint64_t refused;          /* accepted then closed at once (max_connections on a race) */
    uint64_t emfile_episodes;  /* times accepting paused for lack of descriptors */
    uint64_t connects;         /* CONNECTED */
    uint64_t connect_failed;   /* CONNECT_FAILED */
    uint64_t connections_open; /* open now (owned by this loop) */
    uint64_t packets_in;       /* PACKET events */
    uint64_t bytes_in, bytes_out;
    uint64_t reads;    /* receive system calls (or recv completions) */
    uint64_t writes;   /* send/sendmsg/sendfile calls (or send SQEs) */
    uint64_t timeouts; /* idle timeouts */
    uint64_t clogged;  /* hard limit episodes */
    uint64_t stalls;   /* a sink was full: the connection waited */
} seda_io_stats_t;

/* Fills *out for shared thread i (zeros before any socket work there).
 * Returns 0 or -EINVAL. Any thread. */
int seda_runtime_io_stats(const seda_runtime_t *rt, uint32_t i, seda_io_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_SOCKET_H */
