/*
 * The socket layer moving bytes, over every poller backend: echo (small
 * messages, every connection's packets handled on the thread that owns it),
 * bulk transfer in both directions at once, hundreds of concurrent clients,
 * events handled and released on another thread (a dedicated pool), a sink
 * too small for the input (the connection waits; nothing is lost, nothing
 * is reordered), and no descriptor left behind.
 */
#include "socket_test.h"

/* ---- echo ---------------------------------------------------------------------------- */

static void test_echo(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    echo_start(&s, rt, NULL);
    int c[4];
    for (int i = 0; i < 4; i++)
        c[i] = dial(s.port);
    char msg[2048];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 4; i++) {
            size_t len = 1 + (size_t)(round * 37 + i * 11) % sizeof msg;
            for (size_t k = 0; k < len; k++)
                msg[k] = (char)(round + i + k);
            echo_once(c[i], msg, len);
        }
    }
    /* Half-close from the client: the server closes after its flush. */
    for (int i = 0; i < 4; i++) {
        shutdown(c[i], SHUT_WR);
        char x;
        CHECK_EQ(recv(c[i], &x, 1, 0), 0);
        close(c[i]);
    }
    WAIT_UNTIL(atomic_load(&s.closed) == 4);
    CHECK_EQ(atomic_load(&s.wrong_thread), 0);
    CHECK_EQ(atomic_load(&s.last_close_error), 0);
    CHECK_EQ(IO_STAT(rt, accepted), 4);
    CHECK_EQ(IO_STAT(rt, connections_open), 0);
    CHECK(IO_STAT(rt, packets_in) >= 800);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- bulk: write and read at once, from one thread ------------------------------------- */

static void bulk(int fd, size_t total)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    static char out[65536], in[65536];
    size_t sent = 0, got = 0;
    int64_t deadline = seda_clock_now(NULL) + 60000000000LL;
    while (got < total) {
        CHECK(seda_clock_now(NULL) < deadline);
        struct pollfd p = { .fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0) };
        CHECK(poll(&p, 1, 1000) >= 0);
        if (sent < total && (p.revents & POLLOUT)) {
            size_t n = total - sent < sizeof out ? total - sent : sizeof out;
            for (size_t k = 0; k < n; k++)
                out[k] = (char)((sent + k) * 7 + ((sent + k) >> 13));
            ssize_t w = send(fd, out, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                fprintf(stderr, "bulk: send: %s after %zu sent, %zu received\n", strerror(errno),
                        sent, got);
            CHECK(w > 0 || errno == EAGAIN);
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, in, sizeof in, 0);
            CHECK(r > 0);
            for (ssize_t k = 0; k < r; k++)
                CHECK_EQ((uint8_t)in[k],
                         (uint8_t)((got + (size_t)k) * 7 + ((got + (size_t)k) >> 13)));
            got += (size_t)r;
        }
    }
    fcntl(fd, F_SETFL, fl);
}

static void test_bulk(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    echo_start(&s, rt, NULL);
    int c = dial(s.port);
    bulk(c, 16u << 20);
    close(c);
    WAIT_UNTIL(atomic_load(&s.closed) == 1);
    CHECK(IO_STAT(rt, bytes_in) == 16u << 20);
    CHECK(IO_STAT(rt, bytes_out) == 16u << 20);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- hundreds of clients at once -------------------------------------------------------- */

static void test_many_clients(void)
{
    enum { N = 300, ROUNDS = 20 };
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    echo_start(&s, rt, NULL);
    static int c[N];
    for (int i = 0; i < N; i++)
        c[i] = dial(s.port);
    /* Every client sends, then every client reads: all N in flight at once. */
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            uint32_t v[16];
            for (int k = 0; k < 16; k++)
                v[k] = (uint32_t)(i * 1000003 + round * 31 + k);
            write_all(c[i], v, sizeof v);
        }
        for (int i = 0; i < N; i++) {
            uint32_t v[16];
            read_exact(c[i], v, sizeof v);
            for (int k = 0; k < 16; k++)
                CHECK_EQ(v[k], (uint32_t)(i * 1000003 + round * 31 + k));
        }
    }
    CHECK_EQ(IO_STAT(rt, accepted), N);
    /* SO_REUSEPORT spread them over both loops. */
    seda_io_stats_t st0, st1;
    CHECK_OK(seda_runtime_io_stats(rt, 0, &st0));
    CHECK_OK(seda_runtime_io_stats(rt, 1, &st1));
    CHECK(st0.accepted > 0 && st1.accepted > 0);
    for (int i = 0; i < N; i++)
        close(c[i]);
    WAIT_UNTIL(atomic_load(&s.closed) == N);
    CHECK_EQ(atomic_load(&s.wrong_thread), 0);
    echo_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- events handled and released on another thread ----------------------------------------- */

struct far {
    seda_runtime_t *rt;
    _Atomic uint64_t on_shared;
};

static int far_handler(void *ctx, void **events, size_t n)
{
    struct far *f = ctx;
    if (seda_runtime_thread_index(f->rt) >= 0)
        atomic_fetch_add(&f->on_shared, 1);
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET)
            CHECK_OK(seda_conn_write_copy(ev->conn, ev->data, ev->len)); /* posted */
        else if (ev->type == SEDA_IO_READ_EOF)
            CHECK_OK(seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH));
        seda_io_event_release(ev); /* posted back to the owner */
    }
    return 0;
}

static void test_foreign_thread(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct far f = { .rt = rt };
    seda_stage_options_t so = { .name = "far",
                                .handler = far_handler,
                                .ctx = &f,
                                .drop = release_event_cb,
                                .queue_capacity = 1024,
                                .thread_manager = SEDA_THREADS_DEDICATED,
                                .concurrency = 2 };
    seda_stage_t *st;
    CHECK_OK(seda_stage_create(rt, &so, &st));
    seda_listen_options_t lo = { .host = "127.0.0.1", .read_sink = st };
    seda_listener_t *ls;
    CHECK_OK(seda_listen(rt, &lo, &ls));
    int c[8];
    for (int i = 0; i < 8; i++)
        c[i] = dial(seda_listener_port(ls));
    char msg[300];
    for (int round = 0; round < 100; round++)
        for (int i = 0; i < 8; i++) {
            memset(msg, 'a' + (round + i) % 26, sizeof msg);
            echo_once(c[i], msg, 1 + (size_t)(round * 13 + i) % sizeof msg);
        }
    for (int i = 0; i < 8; i++)
        close(c[i]);
    WAIT_UNTIL(IO_STAT(rt, connections_open) == 0);
    CHECK_EQ(atomic_load(&f.on_shared), 0);
    seda_listener_close(ls);
    seda_stage_release(st);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- a sink smaller than the input: the connection waits, in order --------------------------- */

struct slow_sink {
    _Atomic uint64_t next_seq, bytes, bad, eof;
    uint8_t expect; /* the next byte of the pattern */
};

static int slow_handler(void *ctx, void **events, size_t n)
{
    struct slow_sink *k = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            if (ev->seq != atomic_load(&k->next_seq))
                atomic_fetch_add(&k->bad, 1);
            atomic_store(&k->next_seq, ev->seq + 1);
            for (size_t j = 0; j < ev->len; j++)
                if (ev->data[j] != k->expect++)
                    atomic_fetch_add(&k->bad, 1);
            atomic_fetch_add(&k->bytes, ev->len);
            struct timespec ts = { 0, 200000 }; /* slower than the sender */
            nanosleep(&ts, NULL);
        } else if (ev->type == SEDA_IO_READ_EOF) {
            atomic_store(&k->eof, 1);
            seda_conn_close(ev->conn, SEDA_CLOSE_NOW);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_full_sink_waits(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct slow_sink k = { 0 };
    seda_stage_options_t so = { .name = "slow",
                                .handler = slow_handler,
                                .ctx = &k,
                                .drop = release_event_cb,
                                .queue_capacity = 4,
                                .batch_max = 2,
                                .thread_manager = SEDA_THREADS_DEDICATED };
    seda_stage_t *st;
    CHECK_OK(seda_stage_create(rt, &so, &st));
    seda_listen_options_t lo = { .host = "127.0.0.1", .read_sink = st };
    seda_listener_t *ls;
    CHECK_OK(seda_listen(rt, &lo, &ls));
    int c = dial(seda_listener_port(ls));
    enum { TOTAL = 4 << 20 };
    static uint8_t buf[TOTAL];
    for (size_t j = 0; j < TOTAL; j++)
        buf[j] = (uint8_t)j;
    write_all(c, buf, TOTAL);
    shutdown(c, SHUT_WR);
    WAIT_UNTIL(atomic_load(&k.eof) == 1);
    CHECK_EQ(atomic_load(&k.bytes), TOTAL);
    CHECK_EQ(atomic_load(&k.bad), 0);
    CHECK(IO_STAT(rt, stalls) > 0); /* it did wait */
    close(c);
    seda_listener_close(ls);
    seda_stage_release(st);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- the runtime stops with connections open --------------------------------------------- */

static void test_shutdown_closes(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct echo_server s;
    echo_start(&s, rt, NULL);
    int c[10];
    for (int i = 0; i < 10; i++) {
        c[i] = dial(s.port);
        echo_once(c[i], "hello", 5);
    }
    echo_stop(&s);
    seda_runtime_destroy(rt); /* closes the listeners and all 10 connections */
    for (int i = 0; i < 10; i++) {
        char x;
        CHECK_EQ(recv(c[i], &x, 1, 0), 0);
        close(c[i]);
    }
    CHECK_EQ(count_fds(), fds);
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, {
        test_echo();
        test_bulk();
        test_many_clients();
        test_foreign_thread();
        test_full_sink_waits();
        test_shutdown_closes();
    });
    return 0;
}
