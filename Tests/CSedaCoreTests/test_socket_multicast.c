/*
 * seda_conn_write_multi over every poller backend: one buffer to many
 * connections spread over both loops, from a foreign thread (every write
 * posted, one task per loop) and from a loop's own handler (its own
 * connections written at once, the others posted); every client gets the
 * bytes once, in order with the caller's later writes; the release
 * callback runs once per accepted write, on a runtime thread; a connection
 * closed before the call gets its callback with an error; bad arguments
 * queue nothing.
 */
#include "socket_test.h"

#define CLIENTS 8

static struct {
    seda_runtime_t *rt;
    _Atomic int registered, closed;
    seda_conn_t *conns[CLIENTS]; /* retained; written before `registered` counts them */
    _Atomic int released, failed_status, wrong_thread;
    _Atomic int loop_accepted; /* the handler's call */
} mc;

static void released(void *ctx, const void *buf, int status)
{
    (void)ctx;
    (void)buf;
    if (seda_runtime_thread_index(mc.rt) < 0)
        atomic_fetch_add(&mc.wrong_thread, 1);
    if (status < 0)
        atomic_fetch_add(&mc.failed_status, 1);
    atomic_fetch_add(&mc.released, 1);
}

static const char from_loop[] = "loop!";

static int handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            for (size_t k = 0; k < ev->len; k++) {
                uint8_t b = ((const uint8_t *)ev->data)[k];
                if (b < CLIENTS) {
                    seda_conn_retain(ev->conn);
                    mc.conns[b] = ev->conn;
                    atomic_fetch_add(&mc.registered, 1);
                } else if (b == 'T') {
                    int results[CLIENTS];
                    int r = seda_conn_write_multi(mc.conns, CLIENTS, from_loop,
                                                  sizeof from_loop - 1, released, NULL, results);
                    for (int j = 0; j < CLIENTS; j++)
                        CHECK_EQ(results[j], 0);
                    atomic_store(&mc.loop_accepted, r);
                }
            }
        } else if (ev->type == SEDA_IO_CLOSED) {
            atomic_fetch_add(&mc.closed, 1);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_multicast(void)
{
    int fds = count_fds();
    memset(&mc, 0, sizeof mc);
    seda_runtime_t *rt = make_runtime_on(backend);
    mc.rt = rt;
    struct server s;
    /* Handoff deals connections to the loops in turn, so both own some;
     * SO_REUSEPORT's hash put all eight on one loop 1 time in 128. */
    seda_listen_options_t lo = { .accept_mode = SEDA_ACCEPT_HANDOFF };
    serve(&s, rt, handler, NULL, &lo);
    int c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = dial(s.port);
        uint8_t id = (uint8_t)i;
        write_all(c[i], &id, 1);
    }
    WAIT_UNTIL(atomic_load(&mc.registered) == CLIENTS);
    /* Both loops own some of them: the call posts to each. */
    int on[THREADS] = { 0 };
    for (int i = 0; i < CLIENTS; i++)
        on[seda_conn_thread(mc.conns[i])]++;
    for (int t = 0; t < THREADS; t++)
        CHECK(on[t] > 0);

    /* From this (foreign) thread: all posted; then one more write each, after. */
    static const char flood[] = "flood";
    int results[CLIENTS];
    CHECK_EQ(
        seda_conn_write_multi(mc.conns, CLIENTS, flood, sizeof flood - 1, released, NULL, results),
        CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        CHECK_EQ(results[i], 0);
        CHECK_OK(seda_conn_write_copy(mc.conns[i], "+", 1));
    }
    for (int i = 0; i < CLIENTS; i++) {
        char got[6];
        read_exact(c[i], got, 6);
        CHECK(memcmp(got, "flood+", 6) == 0);
    }
    WAIT_UNTIL(atomic_load(&mc.released) == CLIENTS);

    /* From a loop's handler: its own connections at once, the rest posted. */
    write_all(c[0], "T", 1);
    for (int i = 0; i < CLIENTS; i++) {
        char got[5];
        read_exact(c[i], got, 5);
        CHECK(memcmp(got, from_loop, 5) == 0);
    }
    WAIT_UNTIL(atomic_load(&mc.released) == 2 * CLIENTS);
    CHECK_EQ(atomic_load(&mc.loop_accepted), CLIENTS);

    /* Bad arguments: nothing queued, no callback. */
    CHECK_EQ(seda_conn_write_multi(mc.conns, CLIENTS, flood, 5, NULL, NULL, NULL), -EINVAL);
    seda_conn_t *with_null[2] = { mc.conns[0], NULL };
    CHECK_EQ(seda_conn_write_multi(with_null, 2, flood, 5, released, NULL, NULL), -EINVAL);
    CHECK_EQ(seda_conn_write_multi(NULL, 0, flood, 5, released, NULL, NULL), 0);

    /* A connection closed first: from this thread its write is posted like
     * the others (accepted), and refused on its owner: the callback says so. */
    CHECK_OK(seda_conn_close(mc.conns[CLIENTS - 1], SEDA_CLOSE_NOW));
    WAIT_UNTIL(atomic_load(&mc.closed) == 1);
    CHECK_EQ(seda_conn_write_multi(mc.conns, CLIENTS, flood, 5, released, NULL, results), CLIENTS);
    for (int i = 0; i < CLIENTS - 1; i++) {
        char got[5];
        read_exact(c[i], got, 5);
        CHECK(memcmp(got, flood, 5) == 0);
    }
    WAIT_UNTIL(atomic_load(&mc.released) == 3 * CLIENTS);
    CHECK_EQ(atomic_load(&mc.failed_status), 1);
    CHECK_EQ(atomic_load(&mc.wrong_thread), 0);

    for (int i = 0; i < CLIENTS; i++) {
        seda_conn_release(mc.conns[i]);
        close(c[i]);
    }
    WAIT_UNTIL(atomic_load(&mc.closed) == CLIENTS);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, { test_multicast(); });
    return 0;
}
