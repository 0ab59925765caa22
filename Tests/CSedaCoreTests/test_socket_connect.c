/*
 * Outgoing connections and timers, over every poller backend: connect and
 * talk (calls from an outside thread, posted to the owner); connect refused;
 * connect timeout (a listener whose backlog is full drops the SYN); the idle
 * timeout closes a quiet connection, and a busy one costs no timer operation
 * per request (the wheel's own counters); reading stopped and started from
 * outside (flow control), packets numbered in order.
 */
#include "socket_test.h"

static seda_stage_t *client_stage(seda_runtime_t *rt, struct recorder *r)
{
    return make_recorder(rt, "client", r);
}

/* A port nobody listens on: bound by *fd (which the caller closes after
 * use), never listening. Held, not closed at once: a closed port may be
 * taken meanwhile by another test's listener, or picked as the connecting
 * socket's own source port (a loopback connect to itself succeeds). */
static uint16_t deaf_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(*fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    CHECK(bind(*fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(*fd, (struct sockaddr *)&a, &len) == 0);
    return ntohs(a.sin_port);
}

/* ---- connect and talk ------------------------------------------------------------------ */

static _Atomic int user_destroyed;
static int user_token;

static void destroy_user(void *user)
{
    CHECK(user == &user_token);
    atomic_fetch_add(&user_destroyed, 1);
}

static void test_connect_and_talk(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    echo_start(&s, rt, NULL);
    struct recorder r;
    seda_stage_t *cs = client_stage(rt, &r);
    seda_connect_options_t co = { .host = "127.0.0.1", .port = s.port, .sink = cs, .tag = 77 };
    CHECK_RC(seda_connect(rt, &(seda_connect_options_t){ .host = "127.0.0.1", .port = 1 }),
             -EINVAL);
    CHECK_OK(seda_connect(rt, &co));
    seda_io_event_t *ev = recorder_wait(&r, SEDA_IO_CONNECTED);
    CHECK_EQ(ev->tag, 77);
    seda_conn_t *c = ev->conn;
    char peer[64];
    CHECK(seda_conn_peer(c, peer, sizeof peer) > 0);
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%u", s.port);
    CHECK(strcmp(peer, want) == 0);
    /* From this (outside) thread: posted to the owner, in order. */
    for (int i = 0; i < 50; i++) {
        char line[16];
        int n = snprintf(line, sizeof line, "<%02d>", i);
        CHECK_OK(seda_conn_write_copy(c, line, (size_t)n));
    }
    size_t total = 50 * 4;
    char got[256];
    size_t have = 0;
    uint64_t next_seq = 0;
    WAIT_UNTIL(({
        int n = atomic_load(&r.n);
        have = 0;
        next_seq = 0;
        bool ordered = true;
        for (int i = 0; i < n; i++)
            if (r.ev[i]->type == SEDA_IO_PACKET) {
                ordered &= r.ev[i]->seq == next_seq++;
                memcpy(got + have, r.ev[i]->data, r.ev[i]->len);
                have += r.ev[i]->len;
            }
        CHECK(ordered);
        have == total;
    }));
    for (int i = 0; i < 50; i++) {
        char line[16];
        snprintf(line, sizeof line, "<%02d>", i);
        CHECK(memcmp(got + i * 4, line, 4) == 0);
    }
    atomic_store(&user_destroyed, 0);
    seda_conn_set_user(c, &user_token, destroy_user);
    CHECK(seda_conn_user(c) == &user_token);
    CHECK_OK(seda_conn_close(c, SEDA_CLOSE_NOW));
    seda_io_event_t *closed = recorder_wait(&r, SEDA_IO_CLOSED);
    CHECK_EQ(closed->error, 0);
    CHECK_EQ(IO_STAT(rt, connects), 1);
    recorder_clear(&r);
    WAIT_UNTIL(atomic_load(&s.closed) == 1);
    echo_stop(&s);
    seda_stage_release(cs);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&user_destroyed), 1); /* with the connection's memory */
    CHECK_EQ(count_fds(), fds);
}

/* ---- refused and timed out ------------------------------------------------------------------- */

static void test_connect_refused(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct recorder r;
    seda_stage_t *cs = client_stage(rt, &r);
    int deaf;
    seda_connect_options_t co = {
        .host = "127.0.0.1", .port = deaf_port(&deaf), .sink = cs, .tag = 5
    };
    CHECK_OK(seda_connect(rt, &co));
    seda_io_event_t *ev = recorder_wait(&r, SEDA_IO_CONNECT_FAILED);
    close(deaf);
    CHECK_EQ(ev->error, -ECONNREFUSED);
    CHECK_EQ(ev->tag, 5);
    CHECK(ev->conn == NULL);
    CHECK_EQ(IO_STAT(rt, connect_failed), 1);
    CHECK_EQ(IO_STAT(rt, connections_open), 0);
    recorder_clear(&r);
    seda_stage_release(cs);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

static void test_connect_timeout(void)
{
    int fds = count_fds();
    /* A listener that never accepts, with the smallest backlog: once its
     * queue is full the kernel drops SYNs and a connect hangs. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 0) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    int filler[3];
    for (int i = 0; i < 3; i++) {
        filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(filler[i], (struct sockaddr *)&a, sizeof a);
    }
    /* Full once a connection waits to be accepted (the listener reads
     * ready): from then on SYNs are dropped. (A 50 ms sleep instead could let
     * a late handshake leave room for the test's connect, which then succeeds.) */
    struct pollfd lp = { .fd = l, .events = POLLIN };
    CHECK(poll(&lp, 1, 20000) == 1);
    seda_runtime_t *rt = make_runtime_on(backend);
    struct recorder r;
    seda_stage_t *cs = client_stage(rt, &r);
    seda_connect_options_t co = { .host = "127.0.0.1",
                                  .port = ntohs(a.sin_port),
                                  .sink = cs,
                                  .tag = 9,
                                  .timeout_ns = 200000000 };
    CHECK_OK(seda_connect(rt, &co));
    seda_io_event_t *ev = recorder_wait(&r, SEDA_IO_CONNECT_FAILED);
    CHECK_EQ(ev->error, -ETIMEDOUT);
    CHECK_EQ(ev->tag, 9);
    recorder_clear(&r);
    seda_stage_release(cs);
    seda_runtime_destroy(rt);
    for (int i = 0; i < 3; i++)
        close(filler[i]);
    close(l);
    CHECK_EQ(count_fds(), fds);
}

/* ---- idle timeouts ------------------------------------------------------------------------- */

/* A runtime on the backend under test whose time moves only when the test
 * says: idle deadlines cannot pass while a descheduled test thread is slow
 * to talk (the loops look at a manual clock every tick). */
static seda_runtime_t *make_runtime_manual(seda_clock_t **clk)
{
    CHECK_OK(seda_clock_manual_create(clk, 1000000000));
    seda_runtime_options_t o = { .cpu_threads = THREADS, .poller = backend, .clock = *clk };
    seda_runtime_t *rt = NULL;
    CHECK_OK(seda_runtime_create(&rt, &o));
    return rt;
}

static void test_idle_timeout(void)
{
    int fds = count_fds();
    seda_clock_t *clk;
    seda_runtime_t *rt = make_runtime_manual(&clk);
    struct echo_server s;
    seda_listen_options_t lo = { .conn.idle_timeout_ns = 200000000 };
    echo_start(&s, rt, &lo);
    int c = dial(s.port);
    echo_once(c, "quiet", 5);
    CHECK_EQ(IO_STAT(rt, timeouts), 0);
    /* Time passes in steps until the server closes: io_uring may complete
     * the echo's send, which counts as activity, after the first step. */
    WAIT_UNTIL(atomic_load(&s.closed) == 1 || seda_clock_manual_advance(clk, 100000000) != 0);
    char x;
    CHECK_EQ(recv(c, &x, 1, 0), 0); /* closed by the server after 200 ms of silence */
    WAIT_UNTIL(atomic_load(&s.closed) == 1);
    CHECK_EQ(atomic_load(&s.last_close_error), -ETIMEDOUT);
    CHECK_EQ(IO_STAT(rt, timeouts), 1);
    close(c);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    seda_clock_destroy(clk);
    CHECK_EQ(count_fds(), fds);
}

static uint64_t timers_added(seda_runtime_t *rt)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < THREADS; i++) {
        seda_timers_stats_t st;
        seda_timers_stats(seda__loop_of(rt, i)->timers, &st);
        t += st.added;
    }
    return t;
}

/* A busy connection with an idle timeout: activity moves the deadline with
 * one store; the timer is armed once per connection (and re-armed once per
 * timeout period), never per request. */
static void test_idle_timer_cost(void)
{
    enum { CONNS = 50, REQUESTS = 40 };
    /* A manual clock: on the real one, a run slower than the timeout (10 s,
     * a loaded machine under a sanitizer) re-armed the timers once. */
    seda_clock_t *clk;
    seda_runtime_t *rt = make_runtime_manual(&clk);
    struct echo_server s;
    seda_listen_options_t lo = { .conn.idle_timeout_ns = 10000000000LL };
    echo_start(&s, rt, &lo);
    int c[CONNS];
    for (int i = 0; i < CONNS; i++)
        c[i] = dial(s.port);
    echo_once(c[CONNS - 1], "w", 1); /* all are set up by now... */
    WAIT_UNTIL(IO_STAT(rt, accepted) == CONNS);
    uint64_t before = timers_added(rt);
    for (int k = 0; k < REQUESTS; k++)
        for (int i = 0; i < CONNS; i++)
            echo_once(c[i], "req", 3);
    uint64_t added = timers_added(rt) - before;
    fprintf(stderr, "  %d requests on %d connections with idle timeouts: %llu timer adds\n",
            CONNS * REQUESTS, CONNS, (unsigned long long)added);
    CHECK_EQ(added, 0);
    for (int i = 0; i < CONNS; i++)
        close(c[i]);
    WAIT_UNTIL(atomic_load(&s.closed) == CONNS);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    seda_clock_destroy(clk);
}

/* ---- flow control from outside --------------------------------------------------------------- */

struct gate {
    _Atomic(seda_conn_t *) conn;
    _Atomic uint64_t bytes;
};

static int gate_handler(void *ctx, void **events, size_t n)
{
    struct gate *g = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            if (!atomic_load(&g->conn)) { /* the first: stop reading, on the owner */
                CHECK_OK(seda_conn_read_stop(ev->conn));
                seda_conn_retain(ev->conn);
                atomic_store(&g->conn, ev->conn);
            }
            atomic_fetch_add(&g->bytes, ev->len);
        } else if (ev->type == SEDA_IO_READ_EOF) {
            seda_conn_close(ev->conn, SEDA_CLOSE_NOW);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_read_stop_start(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct gate g = { 0 };
    struct server s;
    serve(&s, rt, gate_handler, &g, NULL);
    int c = dial(s.port);
    write_all(c, "first", 5);
    WAIT_UNTIL(atomic_load(&g.bytes) == 5);
    seda_conn_t *conn = atomic_load(&g.conn);
    uint64_t reads = IO_STAT(rt, packets_in);
    write_all(c, "second", 6);
    struct timespec ts = { 0, 50000000 };
    nanosleep(&ts, NULL);
    CHECK_EQ(atomic_load(&g.bytes), 5); /* not read meanwhile */
    CHECK_EQ(IO_STAT(rt, packets_in), reads);
    CHECK_OK(seda_conn_read_start(conn));
    WAIT_UNTIL(atomic_load(&g.bytes) == 11);
    seda_conn_release(conn);
    close(c);
    WAIT_UNTIL(IO_STAT(rt, connections_open) == 0);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, {
        test_connect_and_talk();
        test_connect_refused();
        test_connect_timeout();
        test_idle_timeout();
        test_idle_timer_cost();
        test_read_stop_start();
    });
    return 0;
}
