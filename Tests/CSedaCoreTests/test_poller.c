/*
 * The poller's readiness contract, the same bodies over every backend:
 *   test_poller            every backend
 *   test_poller epoll      one backend (CTest runs one entry per backend)
 * Readable and writable, mod and del, many descriptors (level backends
 * rotate so none starves), hang-ups and half-closes, timeouts, EINTR, the
 * select backend's FD_SETSIZE limit, bad descriptors, the io_uring owner
 * thread, and no descriptor leaked.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define LONG_NS (10LL * 1000000000) /* bounds a wait that must end with an event */

static int backend; /* the backend under test */
static int edge;    /* its trigger mode is SEDA_POLLER_EDGE */
static int is_select;

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

static void nonblocking(int fd)
{
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

static void pair(int sv[2])
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
}

/* A connected TCP pair on 127.0.0.1: sv[0] the client, sv[1] the server. */
static void tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 1) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(sv[0] >= 0);
    CHECK(connect(sv[0], (struct sockaddr *)&a, sizeof a) == 0);
    sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    CHECK(sv[1] >= 0);
    nonblocking(sv[0]);
    close(l);
}

static seda_poller_t *make(void)
{
    seda_poller_t *p;
    seda_poller_options_t o = { .flags = SEDA_POLLER_NO_FALLBACK };
    CHECK_OK(seda_poller_create(&p, backend, &o));
    CHECK_EQ(seda_poller_backend_of(p), backend);
    CHECK_EQ(seda_poller_trigger(p), edge ? SEDA_POLLER_EDGE : SEDA_POLLER_LEVEL);
    return p;
}

/* One wait, retried on EINTR (another test's signals may still be due). */
static int wait_for(seda_poller_t *p, seda_poller_event_t *ev, int max, int64_t timeout_ns)
{
    int n;
    do
        n = seda_poller_wait(p, ev, max, timeout_ns);
    while (n == -EINTR);
    CHECK(n >= 0);
    return n;
}

/* The events reported for fd in ev[0..n), checking it appears at most once. */
static uint32_t events_of(const seda_poller_event_t *ev, int n, int fd)
{
    uint32_t e = 0;
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].fd == fd) {
            e = ev[i].events;
            seen++;
        }
    }
    CHECK(seen <= 1);
    return e;
}

/* Waits (bounded) until fd is reported; returns its events. */
static uint32_t wait_fd(seda_poller_t *p, int fd, void *udata)
{
    seda_poller_event_t ev[16];
    for (int round = 0; round < 100; round++) {
        int n = wait_for(p, ev, 16, LONG_NS);
        CHECK(n >= 1);
        uint32_t e = events_of(ev, n, fd); /* at most once per wait */
        for (int i = 0; i < n; i++)
            if (ev[i].fd == fd)
                CHECK(ev[i].udata == udata);
        if (e != 0)
            return e;
    }
    CHECK(!"descriptor never reported");
    return 0;
}

static void drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static void test_readable(void)
{
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    int token;
    seda_poller_event_t ev[8];
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN, &token));
    CHECK_EQ(seda_poller_count(p), 1);
    CHECK_EQ(wait_for(p, ev, 8, 0), 0);
    CHECK_EQ(write(sv[0], "x", 1), 1);
    CHECK_EQ(wait_fd(p, sv[1], &token), SEDA_POLLER_IN);
    /* Level reports it again while it stays readable; edge does not. */
    int n = wait_for(p, ev, 8, 0);
    CHECK_EQ(n, edge ? 0 : 1);
    if (n == 1)
        CHECK(ev[0].fd == sv[1] && ev[0].events == SEDA_POLLER_IN && ev[0].udata == &token);
    /* Edge: new bytes are a new edge. */
    CHECK_EQ(write(sv[0], "y", 1), 1);
    CHECK_EQ(wait_fd(p, sv[1], &token), SEDA_POLLER_IN);
    drain(sv[1]);
    CHECK_EQ(wait_for(p, ev, 8, 0), 0);
    CHECK_OK(seda_poller_del(p, sv[1]));
    CHECK_EQ(seda_poller_count(p), 0);
    close(sv[0]);
    close(sv[1]);
    seda_poller_destroy(p);
}

static void test_writable(void)
{
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    seda_poller_event_t ev[8];
    CHECK_OK(seda_poller_add(p, sv[0], SEDA_POLLER_OUT, NULL));
    CHECK_EQ(wait_fd(p, sv[0], NULL), SEDA_POLLER_OUT);
    CHECK_EQ(wait_for(p, ev, 8, 0), edge ? 0 : 1);
    /* Fill the socket: no longer writable. */
    char chunk[4096];
    memset(chunk, 'z', sizeof chunk);
    while (write(sv[0], chunk, sizeof chunk) > 0) {
    }
    CHECK_EQ(errno, EAGAIN);
    /* Level: not reported now. Edge: nothing new (the edge was consumed). */
    CHECK_EQ(wait_for(p, ev, 8, 0), 0);
    /* Space freed by the reader: writable again, on every backend. */
    drain(sv[1]);
    CHECK_EQ(wait_fd(p, sv[0], NULL), SEDA_POLLER_OUT);
    CHECK_OK(seda_poller_del(p, sv[0]));
    close(sv[0]);
    close(sv[1]);
    seda_poller_destroy(p);
}

static void test_mod_del(void)
{
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    int u1, u2;
    seda_poller_event_t ev[8];

    CHECK_RC(seda_poller_mod(p, sv[1], SEDA_POLLER_IN, &u1), -ENOENT);
    CHECK_RC(seda_poller_del(p, sv[1]), -ENOENT);
    CHECK_RC(seda_poller_add(p, -1, SEDA_POLLER_IN, NULL), -EBADF);
    CHECK_RC(seda_poller_add(p, sv[1], 1u << 20, NULL), -EINVAL);
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN, &u1));
    CHECK_RC(seda_poller_add(p, sv[1], SEDA_POLLER_IN, &u1), -EEXIST);
    CHECK_RC(seda_poller_mod(p, sv[1], 1u << 20, &u1), -EINVAL);

    CHECK_EQ(write(sv[0], "x", 1), 1);
    CHECK_EQ(wait_fd(p, sv[1], &u1), SEDA_POLLER_IN);
    /* mod changes udata and re-arms: the readiness is reported again. */
    CHECK_OK(seda_poller_mod(p, sv[1], SEDA_POLLER_IN, &u2));
    CHECK_EQ(wait_fd(p, sv[1], &u2), SEDA_POLLER_IN);
    /* OUT only: the socket is writable and still readable; only OUT shows. */
    CHECK_OK(seda_poller_mod(p, sv[1], SEDA_POLLER_OUT, &u1));
    CHECK_EQ(wait_fd(p, sv[1], &u1), SEDA_POLLER_OUT);
    /* Both. */
    CHECK_OK(seda_poller_mod(p, sv[1], SEDA_POLLER_IN | SEDA_POLLER_OUT, &u2));
    CHECK_EQ(wait_fd(p, sv[1], &u2), SEDA_POLLER_IN | SEDA_POLLER_OUT);
    /* 0: only ERR and HUP, neither of which is true. */
    CHECK_OK(seda_poller_mod(p, sv[1], 0, &u2));
    CHECK_EQ(wait_for(p, ev, 8, 0), 0);

    /* del: still readable, never reported; del again is -ENOENT. */
    CHECK_OK(seda_poller_mod(p, sv[1], SEDA_POLLER_IN, &u1));
    CHECK_OK(seda_poller_del(p, sv[1]));
    CHECK_RC(seda_poller_del(p, sv[1]), -ENOENT);
    CHECK_EQ(write(sv[0], "y", 1), 1);
    CHECK_EQ(wait_for(p, ev, 8, 20 * 1000000), 0);
    /* Added again, with a new udata: reported as the new registration. */
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN, &u2));
    CHECK_EQ(wait_fd(p, sv[1], &u2), SEDA_POLLER_IN);
    /* del then add in one go (no wait between): the old registration's
     * completions must not leak into the new one's. */
    CHECK_OK(seda_poller_del(p, sv[1]));
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_OUT, &u1));
    CHECK_EQ(wait_fd(p, sv[1], &u1), SEDA_POLLER_OUT);
    CHECK_OK(seda_poller_del(p, sv[1]));
    CHECK_EQ(seda_poller_count(p), 0);
    close(sv[0]);
    close(sv[1]);
    seda_poller_destroy(p);
}

static void test_many(void)
{
    /* select: every descriptor must stay below FD_SETSIZE. */
    int pairs = is_select ? 300 : 3000;
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if ((rlim_t)pairs * 2 + 64 > rl.rlim_cur)
        pairs = (int)(rl.rlim_cur - 64) / 2;
    int(*sv)[2] = calloc((size_t)pairs, sizeof *sv);
    char *seen = calloc((size_t)pairs, 1);
    CHECK(sv != NULL && seen != NULL);
    seda_poller_t *p = make();
    for (int i = 0; i < pairs; i++) {
        pair(sv[i]);
        CHECK_OK(seda_poller_add(p, sv[i][1], SEDA_POLLER_IN, (void *)(uintptr_t)(i + 1)));
    }
    CHECK_EQ(seda_poller_count(p), pairs);
    int expected = 0;
    for (int i = 0; i < pairs; i += 3) {
        CHECK_EQ(write(sv[i][0], "x", 1), 1);
        expected++;
    }
    /* Small batches: a level backend must rotate, or the same low
     * descriptors would fill every batch. Bounded: expected / 7 rounds and a
     * generous margin. */
    seda_poller_event_t ev[7];
    int got = 0;
    for (int round = 0; got < expected && round < expected * 4 + 100; round++) {
        int n = wait_for(p, ev, 7, LONG_NS);
        CHECK(n >= 1 && n <= 7);
        for (int k = 0; k < n; k++) {
            int i = (int)(uintptr_t)ev[k].udata - 1;
            CHECK(i >= 0 && i < pairs);
            CHECK_EQ(ev[k].fd, sv[i][1]);
            CHECK_EQ(ev[k].events, SEDA_POLLER_IN);
            CHECK_EQ(i % 3, 0);
            if (!seen[i]) {
                seen[i] = 1;
                got++;
            }
        }
    }
    CHECK_EQ(got, expected);
    for (int i = 0; i < pairs; i++) {
        CHECK_OK(seda_poller_del(p, sv[i][1]));
        close(sv[i][0]);
        close(sv[i][1]);
    }
    seda_poller_destroy(p);
    free(sv);
    free(seen);
}

static void test_hangup(void)
{
    seda_poller_t *p = make();
    uint32_t want_in = SEDA_POLLER_IN | SEDA_POLLER_RDHUP;

    /* A socketpair whose peer closes: both directions are gone. */
    int sv[2];
    pair(sv);
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN | SEDA_POLLER_RDHUP, NULL));
    close(sv[0]);
    uint32_t e = wait_fd(p, sv[1], NULL);
    CHECK_EQ(e, is_select ? SEDA_POLLER_IN : want_in | SEDA_POLLER_HUP);
    char c;
    CHECK_EQ(read(sv[1], &c, 1), 0);
    CHECK_OK(seda_poller_del(p, sv[1]));
    close(sv[1]);

    /* TCP half-close: the peer shuts down its writing side only. */
    int tv[2];
    tcp_pair(tv);
    CHECK_OK(seda_poller_add(p, tv[1], SEDA_POLLER_IN | SEDA_POLLER_RDHUP, &tv));
    CHECK(shutdown(tv[0], SHUT_WR) == 0);
    e = wait_fd(p, tv[1], &tv);
    CHECK_EQ(e, is_select ? SEDA_POLLER_IN : want_in);
    /* Edge: reported once, not again until something new happens. */
    seda_poller_event_t ev[4];
    if (edge)
        CHECK_EQ(wait_for(p, ev, 4, 0), 0);
    /* Without RDHUP interest the half-close shows as IN only. */
    CHECK_OK(seda_poller_mod(p, tv[1], SEDA_POLLER_IN, &tv));
    CHECK_EQ(wait_fd(p, tv[1], &tv), SEDA_POLLER_IN);
    CHECK_OK(seda_poller_del(p, tv[1]));
    close(tv[0]);
    close(tv[1]);

    /* A pipe whose writer closes: HUP on the reader, even with no interest. */
    int pf[2];
    CHECK(pipe2(pf, O_NONBLOCK | O_CLOEXEC) == 0);
    CHECK_OK(seda_poller_add(p, pf[0], is_select ? SEDA_POLLER_IN : 0, NULL));
    close(pf[1]);
    e = wait_fd(p, pf[0], NULL);
    CHECK_EQ(e, is_select ? SEDA_POLLER_IN : SEDA_POLLER_HUP);
    CHECK_OK(seda_poller_del(p, pf[0]));
    close(pf[0]);

    /* A pipe whose reader closes: ERR on the writer (select: writable). */
    CHECK(pipe2(pf, O_NONBLOCK | O_CLOEXEC) == 0);
    char fill[4096] = { 0 };
    while (write(pf[1], fill, sizeof fill) > 0) {
    }
    CHECK_OK(seda_poller_add(p, pf[1], SEDA_POLLER_OUT, NULL));
    close(pf[0]);
    e = wait_fd(p, pf[1], NULL);
    if (is_select)
        CHECK_EQ(e, SEDA_POLLER_OUT);
    else
        CHECK((e & SEDA_POLLER_ERR) && !(e & SEDA_POLLER_IN));
    CHECK_OK(seda_poller_del(p, pf[1]));
    close(pf[1]);
    seda_poller_destroy(p);
}

static void test_timeout(void)
{
    seda_poller_t *p = make();
    seda_poller_event_t ev[4];
    /* Nothing registered. */
    CHECK_EQ(wait_for(p, ev, 4, 0), 0);
    CHECK_EQ(wait_for(p, ev, 4, 5 * 1000000), 0);
    /* Something registered that never becomes ready. */
    int sv[2];
    pair(sv);
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN, NULL));
    int64_t start = seda_clock_now(NULL);
    CHECK_EQ(wait_for(p, ev, 4, 20 * 1000000), 0);
    /* Never earlier than asked (how much later is the machine's business). */
    CHECK(seda_clock_now(NULL) - start >= 20 * 1000000);
    CHECK_EQ(wait_for(p, ev, 4, 1), 0);
    CHECK_RC(seda_poller_wait(p, NULL, 4, 0), -EINVAL);
    CHECK_RC(seda_poller_wait(p, ev, 0, 0), -EINVAL);
    /* A huge timeout must not overflow into "already expired". */
    CHECK_EQ(write(sv[0], "x", 1), 1);
    CHECK_EQ(wait_for(p, ev, 4, INT64_MAX), 1);
    CHECK_OK(seda_poller_del(p, sv[1]));
    close(sv[0]);
    close(sv[1]);
    seda_poller_destroy(p);
}

static void on_signal(int sig)
{
    (void)sig;
}

struct interrupter {
    pthread_t target;
    _Atomic int done;
    int fd; /* written to end the wait if no signal ever lands inside it */
};

static void *interrupt_loop(void *arg)
{
    struct interrupter *it = arg;
    /* Signals until the wait returns: some land before the wait starts (the
     * handler runs, the wait then blocks), one lands inside it. Bounded. */
    for (int i = 0; i < 10000 && !atomic_load(&it->done); i++) {
        pthread_kill(it->target, SIGUSR1);
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&it->done))
        CHECK_EQ(write(it->fd, "x", 1), 1);
    return NULL;
}

static void test_eintr(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART; the poller never restarts anyway */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN, NULL));
    struct interrupter it = { .target = pthread_self(), .fd = sv[0] };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, interrupt_loop, &it) == 0);
    seda_poller_event_t ev[4];
    int rc = seda_poller_wait(p, ev, 4, -1);
    atomic_store(&it.done, 1);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_RC(rc, -EINTR);
    /* The poller is intact: an event after the interruption is reported. */
    CHECK_EQ(write(sv[0], "x", 1), 1);
    CHECK_EQ(wait_fd(p, sv[1], NULL), SEDA_POLLER_IN);
    CHECK_OK(seda_poller_del(p, sv[1]));
    close(sv[0]);
    close(sv[1]);
    seda_poller_destroy(p);
    CHECK(sigaction(SIGUSR1, &old, NULL) == 0);
}

static void test_high_fd(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    int high = FD_SETSIZE + 500;
    if (rl.rlim_cur <= (rlim_t)high + 1) {
        fprintf(stderr, "  (high descriptor part skipped: RLIMIT_NOFILE %llu)\n",
                (unsigned long long)rl.rlim_cur);
        return;
    }
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    CHECK(dup2(sv[1], high) == high);
    CHECK(dup2(sv[1], FD_SETSIZE) == FD_SETSIZE);
    CHECK(dup2(sv[1], FD_SETSIZE - 1) == FD_SETSIZE - 1);
    CHECK_EQ(write(sv[0], "x", 1), 1);
    if (is_select) {
        /* Refused with a clear error; nothing is written past the sets (ASan
         * and _FORTIFY_SOURCE would catch it). */
        CHECK_RC(seda_poller_add(p, high, SEDA_POLLER_IN, NULL), -EMFILE);
        CHECK_RC(seda_poller_add(p, FD_SETSIZE, SEDA_POLLER_IN, NULL), -EMFILE);
        CHECK_EQ(seda_poller_count(p), 0);
        CHECK_OK(seda_poller_add(p, FD_SETSIZE - 1, SEDA_POLLER_IN, NULL));
        CHECK_EQ(wait_fd(p, FD_SETSIZE - 1, NULL), SEDA_POLLER_IN);
        CHECK_OK(seda_poller_del(p, FD_SETSIZE - 1));
    } else {
        CHECK_OK(seda_poller_add(p, high, SEDA_POLLER_IN, &high));
        CHECK_EQ(wait_fd(p, high, &high), SEDA_POLLER_IN);
        CHECK_OK(seda_poller_del(p, high));
    }
    close(high);
    close(FD_SETSIZE);
    close(FD_SETSIZE - 1);
    close(sv[0]);
    close(sv[1]);
    seda_poller_destroy(p);
}

static void test_bad_descriptor(void)
{
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    int closed = sv[1];
    close(sv[1]);
    if (backend == SEDA_POLLER_IO_URING) {
        /* The kernel finds out when it runs the request: ERR from the wait,
         * once (not re-armed), and del still works. */
        CHECK_OK(seda_poller_add(p, closed, SEDA_POLLER_IN, NULL));
        CHECK_EQ(wait_fd(p, closed, NULL), SEDA_POLLER_ERR);
        seda_poller_event_t ev[4];
        CHECK_EQ(wait_for(p, ev, 4, 0), 0);
        CHECK_OK(seda_poller_del(p, closed));
    } else {
        CHECK_RC(seda_poller_add(p, closed, SEDA_POLLER_IN, NULL), -EBADF);
    }
    CHECK_EQ(seda_poller_count(p), 0);
    close(sv[0]);
    seda_poller_destroy(p);
}

/* del then close really closes: the peer sees the end of the stream before
 * the poller waits again (io_uring's poll request holds the file). */
static void test_close_after_del(void)
{
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    seda_poller_event_t ev[4];
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN | SEDA_POLLER_OUT, NULL));
    CHECK_EQ(wait_fd(p, sv[1], NULL), SEDA_POLLER_OUT);
    CHECK_OK(seda_poller_del(p, sv[1]));
    close(sv[1]);
    char c;
    CHECK_EQ(read(sv[0], &c, 1), 0);
    CHECK_EQ(wait_for(p, ev, 4, 0), 0);
    close(sv[0]);
    seda_poller_destroy(p);
}

struct owner_arg {
    seda_poller_t *p;
    int fd;
    int result;
};

static void *use_poller(void *arg)
{
    struct owner_arg *a = arg;
    a->result = seda_poller_add(a->p, a->fd, SEDA_POLLER_IN, NULL);
    if (a->result == 0) {
        seda_poller_event_t ev[4];
        a->result = seda_poller_wait(a->p, ev, 4, LONG_NS);
    }
    return NULL;
}

/* Created on this thread, run on another; io_uring then refuses this one. */
static void test_owner_thread(void)
{
    seda_poller_t *p = make();
    int sv[2];
    pair(sv);
    CHECK_EQ(write(sv[0], "x", 1), 1);
    struct owner_arg a = { .p = p, .fd = sv[1] };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, use_poller, &a) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(a.result, 1);
    if (backend == SEDA_POLLER_IO_URING) {
        seda_poller_event_t ev[4];
        CHECK_RC(seda_poller_wait(p, ev, 4, 0), -EBUSY);
        CHECK_RC(seda_poller_del(p, sv[1]), -EBUSY);
    }
    /* Destroyed here, after the owner thread has exited. */
    seda_poller_destroy(p);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    int only = -1;
    if (argc > 1) {
        only = seda_poller_backend_parse(argv[1]);
        CHECK(only > 0);
    }
    int fds_before = count_fds();
    int ran = 0;
    for (backend = SEDA_POLLER_SELECT; backend < SEDA_POLLER_BACKEND_END; backend++) {
        if (only > 0 && backend != only)
            continue;
        if (backend == SEDA_POLLER_IO_URING && !(seda_features() & SEDA_FEATURE_IO_URING)) {
            fprintf(stderr, "io_uring: not available here, skipped\n");
            continue;
        }
        edge = seda_poller_backend_trigger(backend) == SEDA_POLLER_EDGE;
        is_select = backend == SEDA_POLLER_SELECT;
        fprintf(stderr, "%s (%s)\n", seda_poller_backend_name(backend), edge ? "edge" : "level");
        test_readable();
        test_writable();
        test_mod_del();
        test_many();
        test_hangup();
        test_timeout();
        test_eintr();
        test_high_fd();
        test_bad_descriptor();
        test_close_after_del();
        test_owner_thread();
        ran++;
    }
    CHECK_EQ(count_fds(), fds_before);
    return ran > 0 ? 0 : TEST_SKIP;
}
