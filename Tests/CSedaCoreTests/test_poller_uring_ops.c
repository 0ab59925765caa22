/*
 * The io_uring backend's completion operations (private: the socket layer's
 * building blocks, Sources/CSedaCore/poller.h): multishot accept, multishot
 * recv into a provided buffer ring (with -ENOBUFS backpressure: the recv
 * waits, without a completion and without spinning, until a buffer comes
 * back), send, cancel, and destroy with operations in flight. The readiness
 * backends offer none of them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "poller.h" /* the core's private header */
#include "test.h"

#define LONG_NS (10LL * 1000000000)

static int count_fds(void)
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

/* Completions as the handler saw them. */
#define LOG_MAX 256
struct log {
    int n;
    struct seda__poller_completion c[LOG_MAX];
    char data[LOG_MAX][64]; /* a copy of the bytes of RECV completions */
    seda_poller_t *p;
    struct seda__poller_bufring *br;
    int put_back; /* the handler puts RECV buffers back at once */
};

static void record(void *ctx, const struct seda__poller_completion *c)
{
    struct log *log = ctx;
    CHECK(log->n < LOG_MAX);
    log->c[log->n] = *c;
    if (c->kind == SEDA__POLLER_OP_RECV && c->res > 0) {
        CHECK(c->buf != NULL);
        size_t len = (size_t)c->res < 63 ? (size_t)c->res : 63;
        memcpy(log->data[log->n], c->buf, len);
        log->data[log->n][len] = '\0';
        if (log->put_back)
            seda__poller_completion(log->p)->buffer_put(log->p, log->br, c->buf_id);
    }
    log->n++;
}

/* Waits until the log holds at least `want` completions (bounded). */
static void wait_log(seda_poller_t *p, struct log *log, int want)
{
    seda_poller_event_t ev[8];
    for (int round = 0; round < 200 && log->n < want; round++) {
        int rc = seda__poller_wait_once(p, ev, 8, LONG_NS / 100);
        CHECK(rc >= 0);
    }
    CHECK(log->n >= want);
}

/* Waits for the given time, gathering whatever completes. */
static void idle(seda_poller_t *p, int64_t ns)
{
    seda_poller_event_t ev[8];
    int64_t end = seda_clock_now(NULL) + ns;
    for (int64_t now; (now = seda_clock_now(NULL)) < end;)
        CHECK(seda__poller_wait_once(p, ev, 8, end - now) >= 0);
}

static seda_poller_t *make(struct log *log)
{
    seda_poller_t *p;
    seda_poller_options_t o = { .flags = SEDA_POLLER_NO_FALLBACK };
    CHECK_OK(seda_poller_create(&p, SEDA_POLLER_IO_URING, &o));
    CHECK(seda__poller_completion(p) != NULL);
    memset(log, 0, sizeof *log);
    log->p = p;
    seda__poller_completion(p)->set_handler(p, record, log);
    return p;
}

static int listener(struct sockaddr_in *a)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    *a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof *a;
    CHECK(bind(l, (struct sockaddr *)a, sizeof *a) == 0);
    CHECK(listen(l, 16) == 0);
    CHECK(getsockname(l, (struct sockaddr *)a, &len) == 0);
    return l;
}

static int dial(const struct sockaddr_in *a)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK(connect(c, (const struct sockaddr *)a, sizeof *a) == 0);
    return c;
}

static void test_readiness_backends_have_none(void)
{
    for (int b = SEDA_POLLER_SELECT; b <= SEDA_POLLER_EPOLL; b++) {
        seda_poller_t *p;
        CHECK_OK(seda_poller_create(&p, b, NULL));
        CHECK(seda__poller_completion(p) == NULL);
        seda_poller_destroy(p);
    }
}

static void test_accept(void)
{
    struct log log;
    seda_poller_t *p = make(&log);
    const struct seda__poller_completion_ops *co = seda__poller_completion(p);
    struct sockaddr_in a;
    int l = listener(&a);
    uint64_t op;
    CHECK_OK(co->accept(p, l, &a, &op));
    int clients[3];
    for (int i = 0; i < 3; i++)
        clients[i] = dial(&a);
    wait_log(p, &log, 3);
    CHECK_EQ(log.n, 3);
    for (int i = 0; i < 3; i++) {
        struct seda__poller_completion *c = &log.c[i];
        CHECK_EQ(c->kind, SEDA__POLLER_OP_ACCEPT);
        CHECK(c->udata == &a && c->op == op && c->fd == l);
        CHECK(c->res >= 0);
        CHECK_EQ(c->flags & SEDA__POLLER_MORE, SEDA__POLLER_MORE);
        /* Non-blocking and close-on-exec, as promised. */
        CHECK(fcntl(c->res, F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(c->res, F_GETFD) & FD_CLOEXEC);
        close(c->res);
    }
    /* Cancelled: a connection that arrives afterwards is not accepted by us. */
    CHECK_OK(co->cancel(p, op));
    CHECK_RC(co->cancel(p, op), -ENOENT);
    int late = dial(&a);
    idle(p, 30 * 1000000);
    CHECK_EQ(log.n, 3);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC); /* it waits in the backlog */
    CHECK(s >= 0);
    close(s);
    close(late);
    for (int i = 0; i < 3; i++)
        close(clients[i]);
    close(l);
    seda_poller_destroy(p);
}

static void test_recv_and_backpressure(void)
{
    struct log log;
    seda_poller_t *p = make(&log);
    const struct seda__poller_completion_ops *co = seda__poller_completion(p);
    struct seda__poller_bufring *br;
    CHECK_RC(co->bufring_create(p, 3, 64, &br), -EINVAL);
    CHECK_OK(co->bufring_create(p, 4, 16, &br));
    CHECK_EQ(co->buffer_size(br), 16);
    log.br = br;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    uint64_t op;
    CHECK_OK(co->recv(p, sv[1], br, &sv, &op));

    CHECK_EQ(write(sv[0], "hello", 5), 5);
    wait_log(p, &log, 1);
    CHECK_EQ(log.c[0].kind, SEDA__POLLER_OP_RECV);
    CHECK(log.c[0].udata == &sv && log.c[0].op == op && log.c[0].fd == sv[1]);
    CHECK_EQ(log.c[0].res, 5);
    CHECK(strcmp(log.data[0], "hello") == 0);
    CHECK(log.c[0].buf == co->buffer_addr(br, log.c[0].buf_id));
    CHECK_EQ(log.c[0].flags & SEDA__POLLER_MORE, SEDA__POLLER_MORE);

    /* The handler keeps buffers: 3 left in the ring, 64 bytes to receive.
     * 48 arrive, then the kernel finds no buffer (-ENOBUFS): the recv waits
     * without a completion and without being re-armed again and again. */
    char big[64];
    for (int i = 0; i < 64; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_EQ(write(sv[0], big, 64), 64);
    wait_log(p, &log, 4);
    int got = 0;
    for (int i = 1; i < log.n; i++) {
        CHECK_EQ(log.c[i].res, 16);
        CHECK(memcmp(log.data[i], big + got, 16) == 0);
        got += 16;
    }
    CHECK_EQ(got, 48);
    idle(p, 30 * 1000000);
    CHECK_EQ(log.n, 4);
    char c;
    CHECK_EQ(recv(sv[1], &c, 1, MSG_PEEK), 1); /* the rest waits in the socket */

    /* One buffer back: the recv resumes and takes the next 16 bytes. */
    co->buffer_put(p, br, log.c[1].buf_id);
    wait_log(p, &log, 5);
    CHECK_EQ(log.c[4].res, 16);
    CHECK(memcmp(log.data[4], big + 48, 16) == 0);
    CHECK_EQ(log.c[4].flags & SEDA__POLLER_MORE, SEDA__POLLER_MORE);

    /* From now on the handler puts buffers back at once: everything flows. */
    for (int i = 2; i < 5; i++)
        co->buffer_put(p, br, log.c[i].buf_id);
    co->buffer_put(p, br, log.c[0].buf_id);
    log.put_back = 1;
    for (int i = 0; i < 20; i++)
        CHECK_EQ(write(sv[0], "0123456789abcdef0123456789", 26), 26);
    int before = log.n;
    int bytes = 0;
    for (int round = 0; round < 200 && bytes < 20 * 26; round++) {
        wait_log(p, &log, log.n + 1);
        bytes = 0;
        for (int i = before; i < log.n; i++)
            bytes += log.c[i].res;
    }
    CHECK_EQ(bytes, 20 * 26);

    /* End of stream ends the operation. */
    close(sv[0]);
    wait_log(p, &log, log.n + 1);
    CHECK_EQ(log.c[log.n - 1].res, 0);
    CHECK_EQ(log.c[log.n - 1].flags & SEDA__POLLER_MORE, 0);
    CHECK_RC(co->cancel(p, op), -ENOENT);
    close(sv[1]);
    co->bufring_destroy(p, br);
    seda_poller_destroy(p);
}

/* A starved recv is cancelled: no completion, and the socket really closes. */
static void test_cancel_starved_recv(void)
{
    struct log log;
    seda_poller_t *p = make(&log);
    const struct seda__poller_completion_ops *co = seda__poller_completion(p);
    struct seda__poller_bufring *br;
    CHECK_OK(co->bufring_create(p, 1, 8, &br));
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    uint64_t op;
    CHECK_OK(co->recv(p, sv[1], br, NULL, &op));
    CHECK_EQ(write(sv[0], "0123456789abcdef", 16), 16);
    wait_log(p, &log, 1);
    idle(p, 20 * 1000000);
    CHECK_EQ(log.n, 1); /* starved: the one buffer is the handler's */
    CHECK_OK(co->cancel(p, op));
    co->buffer_put(p, br, log.c[0].buf_id);
    idle(p, 20 * 1000000);
    CHECK_EQ(log.n, 1);
    close(sv[1]);
    /* Really closed (no request holds the file): the peer is told at once,
     * with a reset since unread bytes were dropped; EAGAIN would mean the
     * socket were still open. */
    char c;
    ssize_t r = read(sv[0], &c, 1);
    CHECK(r == 0 || (r == -1 && errno == ECONNRESET));
    close(sv[0]);
    co->bufring_destroy(p, br);
    seda_poller_destroy(p);
}

static void test_send(void)
{
    struct log log;
    seda_poller_t *p = make(&log);
    const struct seda__poller_completion_ops *co = seda__poller_completion(p);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    static const char msg[] = "payload";
    uint64_t op;
    CHECK_OK(co->send(p, sv[0], msg, 7, (void *)msg, &op));
    CHECK_RC(co->cancel(p, op), -EBUSY); /* its buffer is the kernel's */
    wait_log(p, &log, 1);
    CHECK_EQ(log.c[0].kind, SEDA__POLLER_OP_SEND);
    CHECK_EQ(log.c[0].res, 7);
    CHECK_EQ(log.c[0].flags, 0);
    CHECK(log.c[0].udata == msg);
    char buf[16];
    CHECK_EQ(read(sv[1], buf, sizeof buf), 7);
    CHECK(memcmp(buf, msg, 7) == 0);
    /* To a closed peer: -EPIPE in the completion, no SIGPIPE. */
    close(sv[1]);
    CHECK_OK(co->send(p, sv[0], msg, 7, NULL, &op));
    wait_log(p, &log, 2);
    CHECK_RC(log.c[1].res, -EPIPE);
    close(sv[0]);
    seda_poller_destroy(p);
}

/* Readiness and completions on one ring, in one wait. */
static void test_mixed(void)
{
    struct log log;
    seda_poller_t *p = make(&log);
    const struct seda__poller_completion_ops *co = seda__poller_completion(p);
    struct seda__poller_bufring *br;
    CHECK_OK(co->bufring_create(p, 8, 32, &br));
    log.br = br;
    log.put_back = 1;
    int a[2], b[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b) == 0);
    uint64_t op;
    CHECK_OK(co->recv(p, a[1], br, NULL, &op));
    CHECK_OK(seda_poller_add(p, b[1], SEDA_POLLER_IN, &b));
    CHECK_EQ(write(a[0], "x", 1), 1);
    CHECK_EQ(write(b[0], "y", 1), 1);
    seda_poller_event_t ev[4];
    int events = 0;
    for (int round = 0; round < 100 && (events == 0 || log.n == 0); round++) {
        int n = seda_poller_wait(p, ev, 4, LONG_NS / 100);
        CHECK(n >= 0);
        for (int i = 0; i < n; i++) {
            CHECK(ev[i].fd == b[1] && ev[i].udata == &b);
            events++;
        }
    }
    CHECK_EQ(events, 1);
    CHECK_EQ(log.n, 1);
    CHECK_EQ(log.c[0].res, 1);
    CHECK_OK(seda_poller_del(p, b[1]));
    /* Destroyed with the recv still armed: the poller cancels it and waits
     * for its end before unmapping the buffers. */
    seda_poller_destroy(p);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

int main(void)
{
    if (!(seda_features() & SEDA_FEATURE_IO_URING)) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        return TEST_SKIP;
    }
    int fds_before = count_fds();
    test_readiness_backends_have_none();
    test_accept();
    test_recv_and_backpressure();
    test_cancel_starved_recv();
    test_send();
    test_mixed();
    CHECK_EQ(count_fds(), fds_before);
    return 0;
}
