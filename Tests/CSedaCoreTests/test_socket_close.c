/*
 * Closing a connection while its reading is being stopped, over every
 * poller backend: the handler stops reading (seda_conn_read_stop) and closes
 * at once, in the same call. On io_uring the stop is asynchronous (the
 * multishot recv's last completion comes later) and the close's own stop
 * finds it under way (-ENOENT): the connection must live until that last
 * completion. It used to be freed at once, and the completion then called
 * through freed memory (a use after free that ASan reports, and that
 * crashes a plain build once the memory is reused: found by the Gnutella
 * router's tests on io_uring).
 */
#include "socket_test.h"

struct stop_close {
    _Atomic uint64_t packets, closed, close_errors;
};

static int stop_close_handler(void *ctx, void **events, size_t n)
{
    struct stop_close *s = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            atomic_fetch_add(&s->packets, 1);
            if (ev->seq == 0) { /* the first: the connection is still open */
                CHECK_OK(seda_conn_read_stop(ev->conn));
                CHECK_OK(seda_conn_close(ev->conn, SEDA_CLOSE_NOW));
            }
        } else if (ev->type == SEDA_IO_CLOSED) {
            atomic_fetch_add(&s->closed, 1);
            if (ev->error != 0)
                atomic_fetch_add(&s->close_errors, 1);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_stop_then_close(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    struct stop_close sc = { 0 };
    struct server s;
    serve(&s, rt, stop_close_handler, &sc, NULL);
    /* Many connections, one after the other: each freed connection's memory
     * is soon reused by the next, so a completion that outlives its
     * connection meets someone else's bytes. */
    const int rounds = 200;
    for (int i = 0; i < rounds; i++) {
        int fd = dial(s.port);
        char msg[64];
        memset(msg, 'a' + i % 26, sizeof msg);
        write_all(fd, msg, sizeof msg);
        char x;
        CHECK(recv(fd, &x, 1, 0) <= 0); /* closed without a reply */
        close(fd);
        WAIT_UNTIL(atomic_load(&sc.closed) == (uint64_t)i + 1);
    }
    CHECK_EQ(atomic_load(&sc.close_errors), 0);
    CHECK_EQ(IO_STAT(rt, accepted), rounds);
    WAIT_UNTIL(IO_STAT(rt, connections_open) == 0);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, { test_stop_then_close(); });
    return 0;
}
