/*
 * Helpers shared by the socket layer's tests (test_socket_*.c): a runtime
 * on the backend under test, an echo server (one bound stage per shared
 * thread, zero-copy: the event is released when its bytes are sent), blocking
 * clients with receive timeouts (a hang fails instead of blocking), event
 * recorders, descriptor counting. Every server listens on 127.0.0.1.
 */
#ifndef SEDA_SOCKET_TEST_H
#define SEDA_SOCKET_TEST_H

#include "runtime_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

#define THREADS 2

static int backend; /* the poller under test */

static inline seda_runtime_t *make_runtime_on(int b)
{
    seda_runtime_options_t o = { .cpu_threads = THREADS, .poller = b };
    seda_runtime_t *rt = NULL;
    CHECK_OK(seda_runtime_create(&rt, &o));
    return rt;
}

static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static inline void release_event_cb(void *ctx, void *ev)
{
    (void)ctx;
    seda_io_event_release(ev);
}

/* ---- the echo server ------------------------------------------------------------ */

struct echo_server {
    seda_runtime_t *rt;
    seda_stage_t *stages[THREADS];
    seda_listener_t *ls;
    uint16_t port;
    _Atomic uint64_t packets, closed, wrong_thread, eofs;
    _Atomic int64_t last_close_error;
};

static inline void echo_sent(void *ctx, const void *buf, int status)
{
    (void)buf;
    (void)status;
    seda_io_event_release(ctx); /* the packet, whose bytes were written */
}

static inline int echo_handler(void *ctx, void **events, size_t n)
{
    struct echo_server *s = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->conn && seda_runtime_thread_index(s->rt) != (int)seda_conn_thread(ev->conn))
            atomic_fetch_add(&s->wrong_thread, 1);
        switch (ev->type) {
        case SEDA_IO_PACKET:
            atomic_fetch_add(&s->packets, 1);
            /* Zero copy: the packet's buffer is the output; the event goes
             * back when it is sent. */
            if (seda_conn_write(ev->conn, ev->data, ev->len, echo_sent, ev) == 0)
                continue;
            break;
        case SEDA_IO_READ_EOF: /* its release closes, after the flush */
            atomic_fetch_add(&s->eofs, 1);
            break;
        case SEDA_IO_UNWRITABLE: /* the peer reads slower than it writes */
            seda_conn_read_stop(ev->conn);
            break;
        case SEDA_IO_WRITABLE: seda_conn_read_start(ev->conn); break;
        case SEDA_IO_CLOSED:
            atomic_store(&s->last_close_error, ev->error);
            atomic_fetch_add(&s->closed, 1);
            break;
        default: break;
        }
        seda_io_event_release(ev);
    }
    return 0;
}

/* Bound echo stages (one per thread) and a listener feeding them. */
static inline void echo_start(struct echo_server *s, seda_runtime_t *rt,
                              const seda_listen_options_t *extra)
{
    memset(s, 0, sizeof *s);
    s->rt = rt;
    for (int i = 0; i < THREADS; i++) {
        char name[24];
        snprintf(name, sizeof name, "echo%d", i);
        seda_stage_options_t so = { .name = name,
                                    .handler = echo_handler,
                                    .ctx = s,
                                    .drop = release_event_cb,
                                    .queue_capacity = 4096,
                                    .bind_to_thread = 1,
                                    .thread_index = (uint32_t)i };
        CHECK_OK(seda_stage_create(rt, &so, &s->stages[i]));
    }
    seda_listen_options_t lo = { 0 };
    if (extra)
        lo = *extra;
    lo.host = "127.0.0.1";
    if (!lo.read_sink)
        lo.read_sinks = s->stages;
    CHECK_OK(seda_listen(rt, &lo, &s->ls));
    s->port = seda_listener_port(s->ls);
    CHECK(s->port != 0);
}

static inline void echo_stop(struct echo_server *s)
{
    seda_listener_close(s->ls);
    for (int i = 0; i < THREADS; i++)
        seda_stage_release(s->stages[i]);
}

/* ---- a server with the test's own handler --------------------------------------------- */

struct server {
    seda_runtime_t *rt;
    seda_stage_t *stages[THREADS];
    seda_listener_t *ls;
    uint16_t port;
};

/* One bound stage per thread running `handler` with ctx, and a listener
 * (127.0.0.1, an ephemeral port) feeding them; lo may set more. */
static inline void serve(struct server *s, seda_runtime_t *rt, seda_handler_fn handler, void *ctx,
                         const seda_listen_options_t *lo_in)
{
    memset(s, 0, sizeof *s);
    s->rt = rt;
    static _Atomic int serial;
    int k = atomic_fetch_add(&serial, 1);
    for (int i = 0; i < THREADS; i++) {
        char name[32];
        snprintf(name, sizeof name, "srv%d.%d", k, i);
        seda_stage_options_t so = { .name = name,
                                    .handler = handler,
                                    .ctx = ctx,
                                    .drop = release_event_cb,
                                    .queue_capacity = 4096,
                                    .bind_to_thread = 1,
                                    .thread_index = (uint32_t)i };
        CHECK_OK(seda_stage_create(rt, &so, &s->stages[i]));
    }
    seda_listen_options_t lo = { 0 };
    if (lo_in)
        lo = *lo_in;
    lo.host = "127.0.0.1";
    if (!lo.read_sink && !lo.accept_sink)
        lo.read_sinks = s->stages;
    CHECK_OK(seda_listen(rt, &lo, &s->ls));
    s->port = seda_listener_port(s->ls);
}

static inline void server_stop(struct server *s)
{
    seda_listener_close(s->ls);
    for (int i = 0; i < THREADS; i++)
        seda_stage_release(s->stages[i]);
}

/* ---- blocking clients ------------------------------------------------------------- */

static inline int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = { .tv_sec = 20 }; /* a hang fails the test, it does not block it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static inline void read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0)
            fprintf(stderr, "read_exact: %zd (%s), %zu bytes missing\n", n,
                    n < 0 ? strerror(errno) : "EOF", len);
        CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Sends msg and reads the same bytes back. */
static inline void echo_once(int fd, const void *msg, size_t len)
{
    char back[65536];
    CHECK(len <= sizeof back);
    write_all(fd, msg, len);
    read_exact(fd, back, len);
    CHECK(memcmp(back, msg, len) == 0);
}

/* ---- event recorders ------------------------------------------------------------- */

#define REC_MAX 4096
struct recorder {
    seda_runtime_t *rt;
    _Atomic int n;
    seda_io_event_t *ev[REC_MAX]; /* kept until recorder_clear */
    _Atomic uint64_t types[16];
};

static inline int record_handler(void *ctx, void **events, size_t n)
{
    struct recorder *r = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        atomic_fetch_add(&r->types[ev->type], 1);
        int k = atomic_load(&r->n);
        if (k < REC_MAX) {
            r->ev[k] = ev;
            atomic_store(&r->n, k + 1);
        } else {
            seda_io_event_release(ev);
        }
    }
    return 0;
}

static inline seda_stage_t *make_recorder(seda_runtime_t *rt, const char *name, struct recorder *r)
{
    memset(r, 0, sizeof *r);
    r->rt = rt;
    seda_stage_options_t so = { .name = name,
                                .handler = record_handler,
                                .ctx = r,
                                .drop = release_event_cb,
                                .queue_capacity = 4096 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &so, &s));
    return s;
}

/* The first recorded event of a type, waiting for it. */
static inline seda_io_event_t *recorder_wait(struct recorder *r, uint32_t type)
{
    seda_io_event_t *found = NULL;
    WAIT_UNTIL(({
        found = NULL;
        int n = atomic_load(&r->n);
        for (int i = 0; i < n && !found; i++)
            if (r->ev[i]->type == type)
                found = r->ev[i];
        found != NULL;
    }));
    return found;
}

static inline void recorder_clear(struct recorder *r)
{
    int n = atomic_load(&r->n);
    for (int i = 0; i < n; i++)
        seda_io_event_release(r->ev[i]);
    atomic_store(&r->n, 0);
}

static inline uint64_t io_stat(seda_runtime_t *rt, size_t offset)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < seda_runtime_cpu_threads(rt); i++) {
        seda_io_stats_t st;
        CHECK_OK(seda_runtime_io_stats(rt, i, &st));
        t += *(uint64_t *)((char *)&st + offset);
    }
    return t;
}
#define IO_STAT(rt, field) io_stat(rt, offsetof(seda_io_stats_t, field))

/* Runs `body` for every backend, or the one named on the command line. */
#define FOR_EACH_BACKEND(argc, argv, body)                                        \
    do {                                                                          \
        const char *only_ = (argc) > 1 ? (argv)[1] : NULL;                        \
        int tested_ = 0;                                                          \
        for (int b_ = SEDA_POLLER_SELECT; b_ < SEDA_POLLER_BACKEND_END; b_++) {   \
            if (only_ && seda_poller_backend_parse(only_) != b_)                  \
                continue;                                                         \
            backend = b_;                                                         \
            fprintf(stderr, "%s: %s\n", (argv)[0], seda_poller_backend_name(b_)); \
            body;                                                                 \
            tested_++;                                                            \
        }                                                                         \
        CHECK(tested_ > 0);                                                       \
    } while (0)

#endif /* SEDA_SOCKET_TEST_H */
