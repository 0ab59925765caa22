/*
 * The poll benchmark kernel: the seed's "Performance of poll(2) and
 * /dev/poll" (one active connection and N idle ones) for every backend of
 * seda_poller.
 *
 * Setup (once, for the largest N): a listener on 127.0.0.1, one active TCP
 * connection with both ends in this process, and N idle TCP connections
 * whose client ends live in a child process (so this process spends one
 * descriptor per idle connection, and 15,000 fit under a 20,000 limit). The
 * idle connections never carry a byte.
 *
 * One measurement: a poller of the given backend watches the active
 * connection's server end and the first n idle ones (all for IN). Then, for
 * each event: one byte is written on the client end, the poller waits
 * (without a timeout) until it reports the server end, and the byte is read.
 * The cost per delivered event is the whole loop's time divided by the
 * events: the write and the read (constant in n) plus the poller's wait,
 * which is what grows with n for select and poll and should not for epoll and
 * io_uring. Registration is not timed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seda/poller.h"
#include "seda_bench.h"

struct seda_bench_poll {
    pid_t child;
    int ctl;                    /* closing it tells the child to exit */
    int active_client, active_server;
    int *idle;                  /* server ends, in accept order (ascending fds) */
    uint32_t nidle;
};

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* In the child: only async-signal-safe calls (the parent may have threads). */
static void child_main(const struct sockaddr_in *a, uint32_t n, int ready, int ctl)
{
    for (uint32_t i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || connect(s, (const struct sockaddr *)a, sizeof *a) != 0) {
            char e = (char)(errno & 0x7f);
            (void)!write(ready, &e, 1);
            _exit(1);
        }
    }
    char ok = 0;
    (void)!write(ready, &ok, 1);
    char c;
    while (read(ctl, &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
}

uint32_t seda_bench_poll_capacity(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    /* Room for what this process already has open, the listener, the active
     * pair, pollers and pipes. */
    return rl.rlim_max > 256 ? (uint32_t)(rl.rlim_max - 256) : 0;
}

int seda_bench_poll_open(seda_bench_poll_t **out, uint32_t idle)
{
    if (out == NULL)
        return -EINVAL;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (idle > seda_bench_poll_capacity())
        return -EMFILE;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* the child inherits it too */
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -errno;
    }
    struct seda_bench_poll *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->idle = calloc(idle ? idle : 1, sizeof *b->idle);
    if (b->idle == NULL) {
        free(b);
        return -ENOMEM;
    }
    b->child = -1;
    b->ctl = b->active_client = b->active_server = -1;
    int rc = 0, listener = -1, ready[2] = { -1, -1 }, ctl[2] = { -1, -1 };

    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listener, 4096) != 0 || getsockname(listener, (struct sockaddr *)&a, &len) != 0)
        goto fail_errno;

    /* The active connection first, so that its descriptors are low (select). */
    b->active_client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b->active_client < 0 || connect(b->active_client, (struct sockaddr *)&a, sizeof a) != 0)
        goto fail_errno;
    b->active_server = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (b->active_server < 0)
        goto fail_errno;
    int one = 1;
    setsockopt(b->active_client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(ctl, O_CLOEXEC) != 0)
        goto fail_errno;
    b->child = fork();
    if (b->child < 0)
        goto fail_errno;
    if (b->child == 0) {
        close(listener);
        close(b->active_client);
        close(b->active_server);
        close(ready[0]);
        close(ctl[1]);
        child_main(&a, idle, ready[1], ctl[0]);
    }
    close(ready[1]);
    ready[1] = -1;
    close(ctl[0]);
    ctl[0] = -1;
    b->ctl = ctl[1];
    ctl[1] = -1;

    /* Accept while the child connects (the backlog alone would overflow). */
    while (b->nidle < idle) {
        struct pollfd pf[2] = { { .fd = listener, .events = POLLIN }, { .fd = ready[0], .events = POLLIN } };
        int n = poll(pf, 2, 10000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -ETIMEDOUT;
            goto fail;
        }
        if (pf[0].revents & POLLIN) {
            int s = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (s < 0)
                goto fail_errno;
            b->idle[b->nidle++] = s;
        } else if (pf[1].revents) {
            char e = 0;
            rc = read(ready[0], &e, 1) == 1 && e != 0 ? -e : -ECONNABORTED;
            goto fail;
        }
    }
    char ok = 1;
    if (read(ready[0], &ok, 1) != 1 || ok != 0) {
        rc = -ECONNABORTED;
        goto fail;
    }
    close(ready[0]);
    close(listener);
    *out = b;
    return 0;

fail_errno:
    rc = -errno;
fail:
    if (listener >= 0)
        close(listener);
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (ctl[i] >= 0)
            close(ctl[i]);
    }
    seda_bench_poll_close(b);
    return rc;
}

void seda_bench_poll_close(seda_bench_poll_t *b)
{
    if (b == NULL)
        return;
    for (uint32_t i = 0; i < b->nidle; i++)
        close(b->idle[i]);
    if (b->active_client >= 0)
        close(b->active_client);
    if (b->active_server >= 0)
        close(b->active_server);
    if (b->ctl >= 0)
        close(b->ctl);
    if (b->child > 0) {
        int status;
        while (waitpid(b->child, &status, 0) < 0 && errno == EINTR) {
        }
    }
    free(b->idle);
    free(b);
}

uint32_t seda_bench_poll_idle(const seda_bench_poll_t *b)
{
    return b->nidle;
}

int seda_bench_poll_run(seda_bench_poll_t *b, int backend, uint32_t n, uint64_t max_events,
                        int64_t max_ns, seda_bench_poll_result_t *r)
{
    if (b == NULL || r == NULL || n > b->nidle || max_events == 0 || max_ns <= 0)
        return -EINVAL;
    memset(r, 0, sizeof *r);
    seda_poller_t *p;
    seda_poller_options_t o = { .flags = SEDA_POLLER_NO_FALLBACK };
    int rc = seda_poller_create(&p, backend, &o);
    if (rc < 0)
        return rc;
    r->max_fd = b->active_server;
    rc = seda_poller_add(p, b->active_server, SEDA_POLLER_IN, b);
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        rc = seda_poller_add(p, b->idle[i], SEDA_POLLER_IN, NULL);
        if (b->idle[i] > r->max_fd)
            r->max_fd = b->idle[i];
    }
    if (rc < 0) {
        seda_poller_destroy(p);
        return rc; /* select: -EMFILE at the first descriptor >= FD_SETSIZE */
    }

    seda_poller_event_t ev[64];
    char buf[64];
    /* Warm-up: 64 events, or a quarter of the time budget if they take longer
     * (poll at 15,000 idle costs milliseconds per event). */
    uint64_t events = 0, warmup = 64, ticks = 0;
    int64_t start = 0, now = 0, warm_start = wall_ns();
    for (uint64_t i = 0; i < warmup + max_events; i++) {
        if (i < warmup && wall_ns() - warm_start >= max_ns / 4)
            warmup = i;
        if (i == warmup)
            start = wall_ns();
        if (write(b->active_client, "x", 1) != 1) {
            rc = -errno;
            break;
        }
        int got = 0;
        while (!got) {
            int k = seda_poller_wait(p, ev, 64, -1);
            if (k == -EINTR)
                continue;
            if (k < 0) {
                rc = k;
                break;
            }
            for (int j = 0; j < k; j++) {
                if (ev[j].udata != b) {
                    rc = -EPROTO; /* an idle connection is never ready */
                    break;
                }
                got = 1;
            }
            if (rc < 0)
                break;
        }
        if (rc < 0)
            break;
        if (read(b->active_server, buf, sizeof buf) != 1) {
            rc = -EPROTO;
            break;
        }
        if (i >= warmup) {
            events++;
            /* Bounded in time too: read the clock every 16 events. */
            if ((++ticks & 15) == 0 && (now = wall_ns()) - start >= max_ns)
                break;
        }
    }
    now = wall_ns();
    seda_poller_destroy(p);
    if (rc < 0)
        return rc;
    r->events = events;
    r->ns_per_event = events ? (double)(now - start) / (double)events : 0;
    r->events_per_s = now > start ? (double)events * 1e9 / (double)(now - start) : 0;
    return 0;
}

int seda_bench_poll_fd_setsize(void)
{
    return FD_SETSIZE;
}
