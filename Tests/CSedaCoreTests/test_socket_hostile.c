/*
 * The socket layer against hostile callers and peers, over every poller
 * backend (regressions found by review): an idle timeout at the far end of
 * the clock must not wrap into the past; a single write larger than the
 * hard limit (SEDA_CLOG_NOTIFY) must not leave the connection refusing
 * writes for ever.
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

/* ---- one write past the hard limit on an empty queue ------------------------------- */

/* SEDA_CLOG_NOTIFY: a write that alone exceeds the hard limit is refused
 * (-ENOBUFS) and CLOGGED delivered; the queue is empty (below the low
 * watermark), so the episode ends at once with WRITABLE, and writes are
 * accepted again. */
#define CLOG_HARD (64u * 1024)
static uint8_t clog_big[CLOG_HARD + 1];
static _Atomic int clog_big_result = 1, clog_small_result = 1;
static _Atomic int clog_clogged, clog_writable;

static int clog_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            atomic_store(&clog_big_result, seda_conn_write_copy(ev->conn, clog_big, sizeof clog_big));
        } else if (ev->type == SEDA_IO_CLOGGED) {
            atomic_fetch_add(&clog_clogged, 1);
        } else if (ev->type == SEDA_IO_WRITABLE) {
            atomic_fetch_add(&clog_writable, 1);
            atomic_store(&clog_small_result, seda_conn_write_copy(ev->conn, "ok", 2));
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_clog_single_write(void)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    atomic_store(&clog_big_result, 1);
    atomic_store(&clog_small_result, 1);
    atomic_store(&clog_clogged, 0);
    atomic_store(&clog_writable, 0);
    struct server srv;
    seda_listen_options_t lo = { .conn = { .high_watermark = 32u * 1024,
                                           .low_watermark = 16u * 1024,
                                           .hard_limit = CLOG_HARD,
                                           .clog_policy = SEDA_CLOG_NOTIFY } };
    serve(&srv, rt, clog_handler, NULL, &lo);
    int fd = dial(srv.port);
    write_all(fd, "x", 1);
    WAIT_UNTIL(atomic_load(&clog_big_result) != 1);
    CHECK(atomic_load(&clog_big_result) == -ENOBUFS);
    WAIT_UNTIL(atomic_load(&clog_clogged) == 1);
    /* The episode is over (nothing is queued): WRITABLE, then writes go. */
    WAIT_UNTIL(atomic_load(&clog_writable) == 1);
    CHECK_OK(atomic_load(&clog_small_result));
    char back[2];
    read_exact(fd, back, 2);
    CHECK(memcmp(back, "ok", 2) == 0);
    close(fd);
    server_stop(&srv);
    seda_runtime_destroy(rt);
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, {
        test_idle_timeout_far();
        test_clog_single_write();
    });
    return 0;
}
