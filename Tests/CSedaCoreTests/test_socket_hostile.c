/*
 * The socket layer against hostile callers and peers, over every poller
 * backend (regressions found by review): an idle timeout at the far end of
 * the clock must not wrap into the past.
 */
#include "socket_test.h"

#include <stdlib.h>

/* ---- an idle timeout of INT64_MAX: never, not at once ------------------------------ */

/* An idle timeout of INT64_MAX ns (~292 years) set at accept, and again
 * with seda_conn_set_idle_timeout: activity pushes the deadline forward
 * with saturating arithmetic, so the connection is not closed at once. */
static _Atomic int idle_set_result = 1;

static int idle_handler(void *ctx, void **events, size_t n)
{
    struct echo_server *s = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            atomic_store(&idle_set_result, seda_conn_set_idle_timeout(ev->conn, INT64_MAX));
            seda_conn_write_copy(ev->conn, ev->data, ev->len);
        } else if (ev->type == SEDA_IO_CLOSED) {
            atomic_store(&s->last_close_error, ev->error);
            atomic_fetch_add(&s->closed, 1);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_idle_timeout_far(void)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    static struct echo_server es;
    memset(&es, 0, sizeof es);
    struct server srv;
    seda_listen_options_t lo = { .conn = { .idle_timeout_ns = INT64_MAX } };
    serve(&srv, rt, idle_handler, &es, &lo);
    int fd = dial(srv.port);
    for (int i = 0; i < 20; i++)
        echo_once(fd, "ping", 4);
    CHECK_OK(atomic_load(&idle_set_result));
    CHECK(atomic_load(&es.closed) == 0);
    CHECK(IO_STAT(rt, timeouts) == 0);
    close(fd);
    WAIT_UNTIL(atomic_load(&es.closed) == 1);
    CHECK(atomic_load(&es.last_close_error) == 0);
    server_stop(&srv);
    seda_runtime_destroy(rt);
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, {
        test_idle_timeout_far();
    });
    return 0;
}
