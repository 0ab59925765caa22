/*
 * Accepting, over every poller backend: out of descriptors (RLIMIT_NOFILE
 * lowered in this process) the server pauses accepting, logs once per
 * episode, burns no CPU meanwhile (measured with getrusage and the loops'
 * poll counts, not wall time) and serves the waiting clients once
 * descriptors free up; suspend and resume; the connection limit (excess
 * waits in the backlog, accepting resumes as connections close); the
 * hand-off mode; a listener with only an accept sink, whose handler gives
 * each connection its sink.
 */
#include "socket_test.h"

#include <sys/resource.h>

/* Waits until every loop has run what was posted to it before. */
struct barrier_task {
    struct seda__task task;
    _Atomic int done;
};

static void barrier_run(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    atomic_store(&((struct barrier_task *)t)->done, 1);
}

static void barrier(seda_runtime_t *rt)
{
    struct barrier_task b[THREADS];
    for (uint32_t i = 0; i < THREADS; i++) {
        b[i].task.run = barrier_run;
        atomic_store(&b[i].done, 0);
        CHECK(seda__loop_post(seda__loop_of(rt, i), &b[i].task));
    }
    for (uint32_t i = 0; i < THREADS; i++)
        WAIT_UNTIL(atomic_load(&b[i].done) == 1);
}

static uint64_t loop_polls(seda_runtime_t *rt)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < THREADS; i++) {
        seda_loop_stats_t st;
        CHECK_OK(seda_runtime_loop_stats(rt, i, &st));
        t += st.polls;
    }
    return t;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static bool readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1;
}

/* ---- out of descriptors --------------------------------------------------------------- */

static _Atomic int log_lines;

static void count_log(void *ctx, const char *msg)
{
    (void)ctx;
    (void)msg;
    atomic_fetch_add(&log_lines, 1);
}

static void test_emfile(void)
{
    enum { CLIENTS = 4, DUMMIES_MAX = 4096 };
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    /* The limit is lowered before the server listens: io_uring's accept
     * takes RLIMIT_NOFILE when the request is prepared, as a server's
     * process has its limit from the start. */
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit low = { .rlim_cur = (rlim_t)count_fds() + 32, .rlim_max = old.rlim_max };
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    struct echo_server s;
    atomic_store(&log_lines, 0);
    seda_listen_options_t lo = { .log = count_log };
    echo_start(&s, rt, &lo);
    barrier(rt); /* both loops accept */
    int c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) { /* descriptors first: connect needs none */
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(c[i] >= 0);
    }
    static int dummy[DUMMIES_MAX];
    int nd = 0;
    while (nd < DUMMIES_MAX && (dummy[nd] = dup(0)) >= 0)
        nd++;
    CHECK(errno == EMFILE);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(s.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(connect(c[i], (struct sockaddr *)&a, sizeof a) == 0); /* the backlog takes it */
        write_all(c[i], "ping", 4);
    }
    WAIT_UNTIL(IO_STAT(rt, emfile_episodes) >= 1);
    /* Out of descriptors with clients waiting: the loops must not spin.
     * A spinning loop polls millions of times and burns the window's CPU. */
    uint64_t polls = loop_polls(rt);
    int64_t cpu = cpu_ns();
    struct timespec ts = { 0, 300000000 };
    nanosleep(&ts, NULL);
    uint64_t polls_during = loop_polls(rt) - polls;
    int64_t cpu_during = cpu_ns() - cpu;
    fprintf(stderr, "  out of descriptors for 300 ms: %llu polls, %.1f ms CPU\n",
            (unsigned long long)polls_during, cpu_during / 1e6);
    CHECK(polls_during < 100);
    CHECK(cpu_during < 150000000);
    CHECK_EQ(IO_STAT(rt, accepted), 0);
    /* Descriptors free up: every waiting client is served. */
    for (int i = 0; i < nd; i++)
        close(dummy[i]);
    for (int i = 0; i < CLIENTS; i++) {
        char b[4];
        read_exact(c[i], b, 4);
        CHECK(memcmp(b, "ping", 4) == 0);
    }
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK_EQ(IO_STAT(rt, accepted), CLIENTS);
    /* Logged once per episode and loop, not once per attempt. */
    CHECK(atomic_load(&log_lines) >= 1);
    CHECK((uint64_t)atomic_load(&log_lines) == IO_STAT(rt, emfile_episodes));
    CHECK(atomic_load(&log_lines) <= THREADS);
    for (int i = 0; i < CLIENTS; i++)
        close(c[i]);
    WAIT_UNTIL(atomic_load(&s.closed) == CLIENTS);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- suspend and resume ----------------------------------------------------------------- */

static void test_suspend_resume(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    echo_start(&s, rt, NULL);
    int a = dial(s.port);
    echo_once(a, "one", 3);
    CHECK_OK(seda_listener_suspend(s.ls));
    barrier(rt);
    int b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = dial(s.port); /* completes in the backlog */
        write_all(b[i], "two", 3);
    }
    for (int i = 0; i < 4; i++)
        CHECK(!readable(b[i], i == 0 ? 100 : 0));
    CHECK_EQ(IO_STAT(rt, accepted), 1);
    echo_once(a, "still", 5); /* accepted connections carry on */
    CHECK_OK(seda_listener_resume(s.ls));
    for (int i = 0; i < 4; i++) {
        char x[3];
        read_exact(b[i], x, 3);
        CHECK(memcmp(x, "two", 3) == 0);
        close(b[i]);
    }
    close(a);
    WAIT_UNTIL(atomic_load(&s.closed) == 5);
    seda_listener_retain(s.ls);
    echo_stop(&s); /* closes the listener */
    CHECK_RC(seda_listener_suspend(s.ls), -EPIPE);
    seda_listener_release(s.ls);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- the connection limit ------------------------------------------------------------------ */

static void test_max_connections(void)
{
    enum { N = 6, MAX = 3 };
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    seda_listen_options_t lo = { .max_connections = MAX };
    echo_start(&s, rt, &lo);
    barrier(rt);
    int c[N];
    bool served[N] = { false };
    for (int i = 0; i < N; i++) {
        c[i] = dial(s.port);
        write_all(c[i], "hi", 2);
    }
    /* Exactly MAX are served; the others wait in the backlog. */
    int nserved = 0;
    WAIT_UNTIL(({
        for (int i = 0; i < N; i++)
            if (!served[i] && readable(c[i], 0)) {
                char x[2];
                read_exact(c[i], x, 2);
                served[i] = true;
                nserved++;
            }
        nserved == MAX;
    }));
    for (int i = 0; i < N; i++)
        CHECK(served[i] || !readable(c[i], i == 0 ? 100 : 0));
    CHECK_EQ(IO_STAT(rt, accepted), MAX);
    CHECK_EQ(seda_listener_connections(s.ls), MAX);
    /* Each close lets one more in. */
    int closed = 0;
    for (int round = 0; round < N - MAX; round++) {
        for (int i = 0; i < N; i++)
            if (served[i] && c[i] >= 0) {
                close(c[i]);
                c[i] = -1;
                closed++;
                break;
            }
        WAIT_UNTIL(({
            bool more = false;
            for (int i = 0; i < N; i++)
                if (!served[i] && readable(c[i], 0)) {
                    char x[2];
                    read_exact(c[i], x, 2);
                    served[i] = true;
                    more = true;
                    break;
                }
            more;
        }));
        CHECK(seda_listener_connections(s.ls) <= MAX);
    }
    CHECK_EQ(IO_STAT(rt, accepted), N);
    for (int i = 0; i < N; i++)
        if (c[i] >= 0)
            close(c[i]);
    WAIT_UNTIL(atomic_load(&s.closed) == N);
    CHECK_EQ(seda_listener_connections(s.ls), 0);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- hand-off ------------------------------------------------------------------------------ */

static void test_handoff(void)
{
    enum { N = 20 };
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    seda_listen_options_t lo = { .accept_mode = SEDA_ACCEPT_HANDOFF };
    echo_start(&s, rt, &lo);
    int c[N];
    for (int i = 0; i < N; i++)
        c[i] = dial(s.port);
    for (int round = 0; round < 10; round++)
        for (int i = 0; i < N; i++)
            echo_once(c[i], "handed", 6);
    /* One socket, but the connections live on both loops. */
    seda_io_stats_t st0, st1;
    CHECK_OK(seda_runtime_io_stats(rt, 0, &st0));
    CHECK_OK(seda_runtime_io_stats(rt, 1, &st1));
    CHECK(st0.connections_open > 0 && st1.connections_open > 0);
    CHECK_EQ(st0.connections_open + st1.connections_open, N);
    CHECK_EQ(atomic_load(&s.wrong_thread), 0);
    for (int i = 0; i < N; i++)
        close(c[i]);
    WAIT_UNTIL(atomic_load(&s.closed) == N);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- an accept sink that assigns read sinks ---------------------------------------------- */

struct assigner {
    struct echo_server *echo;
    _Atomic(seda_listener_t *) ls; /* what ACCEPTED should name */
    _Atomic int accepted, listener_ok, assigned;
};

static int assign_handler(void *ctx, void **events, size_t n)
{
    struct assigner *a = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_ACCEPTED) {
            atomic_fetch_add(&a->accepted, 1);
            if (ev->listener == atomic_load(&a->ls))
                atomic_fetch_add(&a->listener_ok, 1);
            CHECK_OK(seda_conn_set_sink(ev->conn, a->echo->stages[seda_conn_thread(ev->conn)]));
            CHECK_OK(seda_conn_read_start(ev->conn));
            atomic_fetch_add(&a->assigned, 1);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_accept_sink(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    struct assigner as = { .echo = &s };
    /* echo_start creates the stages; the listener has only the accept sink. */
    memset(&s, 0, sizeof s);
    s.rt = rt;
    for (int i = 0; i < THREADS; i++) {
        char name[24];
        snprintf(name, sizeof name, "echo%d", i);
        seda_stage_options_t eo = { .name = name,
                                    .handler = echo_handler,
                                    .ctx = &s,
                                    .drop = release_event_cb,
                                    .queue_capacity = 4096,
                                    .bind_to_thread = 1,
                                    .thread_index = (uint32_t)i };
        CHECK_OK(seda_stage_create(rt, &eo, &s.stages[i]));
    }
    /* After the echo stages: its thread starts knowing them. */
    seda_stage_options_t so = { .name = "assign",
                                .handler = assign_handler,
                                .ctx = &as,
                                .drop = release_event_cb,
                                .thread_manager = SEDA_THREADS_DEDICATED };
    seda_stage_t *assign;
    CHECK_OK(seda_stage_create(rt, &so, &assign));
    seda_listen_options_t lo = { .host = "127.0.0.1", .accept_sink = assign };
    CHECK_OK(seda_listen(rt, &lo, &s.ls));
    atomic_store(&as.ls, s.ls);
    s.port = seda_listener_port(s.ls);
    int c[6];
    for (int i = 0; i < 6; i++) {
        c[i] = dial(s.port);
        echo_once(c[i], "late sink", 9); /* sent before the sink was set: kept */
    }
    /* The echo needs only the sink: the handler may still be in its
     * read_start, which fails with -EPIPE once the teardown below has
     * stopped the loops. Wait for it to be done. */
    WAIT_UNTIL(atomic_load(&as.assigned) == 6);
    CHECK_EQ(atomic_load(&as.accepted), 6);
    CHECK_EQ(atomic_load(&as.listener_ok), 6);
    for (int i = 0; i < 6; i++)
        close(c[i]);
    WAIT_UNTIL(atomic_load(&s.closed) == 6); /* CLOSED went to the read sink */
    echo_stop(&s);
    seda_stage_release(assign);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- arguments ------------------------------------------------------------------------------ */

static int nop(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        seda_io_event_release(events[i]);
    return 0;
}

static void test_listen_arguments(void)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    seda_stage_options_t so = { .name = "nop", .handler = nop, .drop = release_event_cb };
    seda_stage_t *st;
    CHECK_OK(seda_stage_create(rt, &so, &st));
    seda_listener_t *ls;
    seda_listen_options_t lo = { .host = "127.0.0.1" };
    CHECK_RC(seda_listen(rt, &lo, &ls), -EINVAL); /* no sink */
    lo.read_sink = st;
    lo.host = "not an address";
    CHECK_RC(seda_listen(rt, &lo, &ls), -EINVAL);
    lo.host = "127.0.0.1";
    lo.conn.low_watermark = 100;
    lo.conn.high_watermark = 10;
    CHECK_RC(seda_listen(rt, &lo, &ls), -EINVAL);
    lo.conn = (seda_conn_options_t){ 0 };
    CHECK_OK(seda_listen(rt, &lo, &ls));
    uint16_t port = seda_listener_port(ls);
    /* The port is taken (by sockets without SO_REUSEPORT's same owner? ours
     * share it: a second listener on it joins the group). A plain socket
     * cannot bind it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == EADDRINUSE);
    close(fd);
    seda_listener_close(ls);
    /* ::1 works where IPv6 does. */
    lo.host = "::1";
    int r = seda_listen(rt, &lo, &ls);
    CHECK(r == 0 || r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT);
    if (r == 0) {
        CHECK(seda_listener_port(ls) != 0);
        seda_listener_close(ls);
    }
    seda_stage_release(st);
    seda_runtime_destroy(rt);
    /* After the runtime stopped, nothing can listen. */
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, {
        test_listen_arguments();
        test_emfile();
        test_suspend_resume();
        test_max_connections();
        test_handoff();
        test_accept_sink();
    });
    return 0;
}
