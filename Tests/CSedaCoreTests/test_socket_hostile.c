/*
 * The socket layer against hostile callers and peers, over every poller
 * backend (regressions found by review): an idle timeout at the far end of
 * the clock must not wrap into the past; a single write larger than the
 * hard limit (SEDA_CLOG_NOTIFY) must not leave the connection refusing
 * writes for ever; a resume posted to a listener paused at its connection
 * limit must not outlive the listener; WRITABLE meeting a full sink while
 * received packets wait past the read budget with reading stopped must
 * still arrive; the idle deadline of a connection
 * accepted after the loop slept longer than the timeout is counted from
 * now, not from before the sleep; a listening socket that select cannot
 * watch (numbered FD_SETSIZE or more) is refused, not left deaf, and so is
 * a connection select cannot watch when its sink is set late; a zero-copy
 * write's release callback that closes the connection leaves no event after
 * CLOSED and no bytes counted as queued; a stopped recv is waited for by a
 * close; a huge copy from another thread is refused by the clog policy, not
 * allocated and copied; statistics read while the socket state is freed.
 */
#include "socket_test.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/select.h>

#include "socket_internal.h"

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

/* Echoes (a copy) and counts CLOSED; leaves the idle timeout alone. */
static int copy_echo_handler(void *ctx, void **events, size_t n)
{
    struct echo_server *s = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
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

/* ---- WRITABLE into a full sink, input held past the budget, reading stopped ----------- */

/* io_uring delivers at most SEDA__IO_READ_BUDGET packets per connection per
 * poll; the rest are held on the connection (BUDGET) and go out from the
 * ready list, but only while the application reads: after
 * seda_conn_read_stop they wait for read_start. A handler that stopped
 * reading on UNWRITABLE reads again on WRITABLE; if WRITABLE met a full
 * sink it was held behind those packets with nothing to retry it (only
 * stalled connections are retried), and the connection stayed paused for
 * ever. The state "packets held past the budget, reading stopped" is made
 * on the owner loop the way recv completions and the handler make it; the
 * sink is a dedicated stage the test fills. io_uring only (the other
 * backends never hold packets for the budget). */
static _Atomic int wr_gate, wr_blocked, wr_writable, wr_unwritable, wr_packets, wr_bad_seq;
static seda_conn_t *_Atomic wr_conn;
static int wr_dummy;
static _Atomic uint64_t wr_next_seq;

static void wr_drop(void *ctx, void *ev)
{
    (void)ctx;
    if (ev != &wr_dummy)
        seda_io_event_release(ev);
}

static int wr_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        if (events[i] == &wr_dummy) {
            atomic_store(&wr_blocked, 1);
            WAIT_UNTIL(atomic_load(&wr_gate));
            continue;
        }
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            if (ev->seq != atomic_load(&wr_next_seq))
                atomic_fetch_add(&wr_bad_seq, 1);
            atomic_store(&wr_next_seq, ev->seq + 1);
            if (atomic_fetch_add(&wr_packets, 1) == 0) {
                seda_conn_retain(ev->conn);
                atomic_store(&wr_conn, ev->conn);
            }
        } else if (ev->type == SEDA_IO_UNWRITABLE) {
            atomic_fetch_add(&wr_unwritable, 1);
        } else if (ev->type == SEDA_IO_WRITABLE) {
            atomic_fetch_add(&wr_writable, 1);
            seda_conn_read_start(ev->conn);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

struct wr_task {
    struct seda__task task;
    _Atomic int done;
};

/* On the owner loop: the budget used with one packet held, then the
 * handler's read_stop (as after UNWRITABLE). */
static void wr_make_state(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    seda_conn_t *c = atomic_load(&wr_conn);
    c->flags |= SEDA__C_BUDGET;
    struct seda__io_event *ev = seda__io_event_new(c->io, SEDA_IO_PACKET, c);
    CHECK(ev != NULL);
    ev->pub.data = (const uint8_t *)"held";
    ev->pub.len = 4;
    ev->pub.seq = c->seq++;
    seda__conn_hold(c, ev);
    CHECK_OK(seda_conn_read_stop(c));
    atomic_store(&((struct wr_task *)t)->done, 1);
}

static void test_writable_full_sink_budget(void)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    if (!seda__loop_of(rt, 0)->completion) { /* not io_uring (or it fell back) */
        seda_runtime_destroy(rt);
        return;
    }
    atomic_store(&wr_gate, 0);
    atomic_store(&wr_blocked, 0);
    atomic_store(&wr_writable, 0);
    atomic_store(&wr_unwritable, 0);
    atomic_store(&wr_packets, 0);
    atomic_store(&wr_bad_seq, 0);
    atomic_store(&wr_next_seq, 0);
    atomic_store(&wr_conn, NULL);
    seda_stage_options_t so = { .name = "wr",
                                .handler = wr_handler,
                                .drop = wr_drop,
                                .queue_capacity = 4,
                                .batch_max = 1,
                                .thread_manager = SEDA_THREADS_DEDICATED };
    seda_stage_t *sink;
    CHECK_OK(seda_stage_create(rt, &so, &sink));
    seda_listen_options_t lo = { .host = "127.0.0.1",
                                 .accept_mode = SEDA_ACCEPT_HANDOFF, /* the first goes to loop 0 */
                                 .read_sink = sink,
                                 .conn = { .hard_limit = 32u << 20 } };
    seda_listener_t *ls;
    CHECK_OK(seda_listen(rt, &lo, &ls));
    /* A client that reads nothing yet, with a small receive buffer. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(seda_listener_port(ls)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = { .tv_sec = 20 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    write_all(fd, "x", 1);
    WAIT_UNTIL(atomic_load(&wr_conn) != NULL);
    seda_conn_t *c = atomic_load(&wr_conn);
    CHECK_EQ(seda_conn_thread(c), 0);
    /* Output past the high watermark (UNWRITABLE), more than the kernel's
     * socket buffers hold: it stays above the low watermark until the peer
     * reads. */
    enum { OUT = 8 << 20 };
    static uint8_t out[OUT];
    CHECK_OK(seda_conn_write_copy(c, out, OUT));
    WAIT_UNTIL(atomic_load(&wr_unwritable) == 1);
    static struct wr_task t;
    atomic_store(&t.done, 0);
    t.task.run = wr_make_state;
    CHECK(seda__loop_post(seda__loop_of(rt, 0), &t.task));
    WAIT_UNTIL(atomic_load(&t.done));
    CHECK_EQ(atomic_load(&wr_writable), 0);
    CHECK(seda_conn_queued(c) > 32 * 1024);
    /* The sink full: its thread holds one dummy, its queue the others. */
    CHECK_OK(seda_stage_enqueue(sink, &wr_dummy));
    WAIT_UNTIL(atomic_load(&wr_blocked));
    while (seda_stage_enqueue(sink, &wr_dummy) == 0) {
    }
    /* The peer reads it all: the queue drains, WRITABLE meets the full sink. */
    static uint8_t back[OUT];
    read_exact(fd, back, OUT);
    atomic_store(&wr_gate, 1);
    WAIT_UNTIL(atomic_load(&wr_writable) == 1); /* stuck for ever before the fix */
    WAIT_UNTIL(atomic_load(&wr_packets) == 2);  /* read_start: the held packet */
    CHECK_EQ(atomic_load(&wr_bad_seq), 0);
    seda_conn_release(c);
    close(fd);
    seda_listener_close(ls);
    seda_stage_release(sink);
    seda_runtime_destroy(rt);
}

/* ---- activity after a long sleep ------------------------------------------------------ */

/* A loop that slept (nothing to do) for longer than the idle timeout wakes
 * to accept a connection: its deadline is counted from the accept, not from
 * the clock the loop read before it slept (the connection was closed at
 * once with -ETIMEDOUT). A manual clock makes "longer" exact: it moves
 * while the loops sleep without waking them. */
static void test_idle_after_sleep(void)
{
    seda_clock_t *clk;
    CHECK_OK(seda_clock_manual_create(&clk, 1000000000));
    seda_runtime_options_t ro = { .cpu_threads = THREADS, .poller = backend, .clock = clk };
    seda_runtime_t *rt = NULL;
    CHECK_OK(seda_runtime_create(&rt, &ro));
    static struct echo_server es;
    memset(&es, 0, sizeof es);
    struct server srv;
    seda_listen_options_t lo = { .conn = { .idle_timeout_ns = 1000000000 } };
    serve(&srv, rt, copy_echo_handler, &es, &lo);
    /* Both loops have their socket state (and read the clock). */
    for (uint32_t i = 0; i < THREADS; i++)
        WAIT_UNTIL(seda__io_peek(seda__loop_of(rt, i)) != NULL);
    CHECK_OK(seda_clock_manual_set(clk, 11000000000)); /* 10 s later */
    int fd = dial(srv.port);
    echo_once(fd, "ping", 4); /* reset at once before the fix */
    echo_once(fd, "ping", 4);
    CHECK(atomic_load(&es.closed) == 0);
    CHECK(IO_STAT(rt, timeouts) == 0);
    close(fd);
    WAIT_UNTIL(atomic_load(&es.closed) == 1);
    CHECK(atomic_load(&es.last_close_error) == 0);
    server_stop(&srv);
    seda_runtime_destroy(rt);
    seda_clock_destroy(clk);
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
            atomic_store(&clog_big_result,
                         seda_conn_write_copy(ev->conn, clog_big, sizeof clog_big));
        } else if (ev->type == SEDA_IO_CLOGGED) {
            atomic_fetch_add(&clog_clogged, 1);
        } else if (ev->type == SEDA_IO_WRITABLE) {
            /* The result first: the test reads it once it sees WRITABLE. */
            atomic_store(&clog_small_result, seda_conn_write_copy(ev->conn, "ok", 2));
            atomic_fetch_add(&clog_writable, 1);
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

/* ---- a listener closed while paused at its limit ------------------------------------ */

/* A connection that closes on loop 1 while loop 0's part is paused at the
 * connection limit posts loop 0 a resume. When the listener was closed
 * just before (its close still queued on loop 0), the close runs first and
 * drops the part's reference; the resume, queued behind it, must still
 * find the listener's memory (the post holds a reference). Loop 0 is held
 * busy by a bound stage so that both posts wait in its inbox. ASan reports
 * the use after free this test was written for. */
static _Atomic int lim_blocked, lim_unblock, lim_closed;

static void lim_drop(void *ctx, void *ev)
{
    (void)ctx;
    (void)ev;
}

static int lim_block_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    (void)events;
    (void)n;
    atomic_store(&lim_blocked, 1);
    WAIT_UNTIL(atomic_load(&lim_unblock));
    return 0;
}

static int lim_read_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_CLOSED)
            atomic_fetch_add(&lim_closed, 1);
        seda_io_event_release(ev);
    }
    return 0;
}

static void reset_close(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void test_close_paused_listener(void)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    atomic_store(&lim_blocked, 0);
    atomic_store(&lim_unblock, 0);
    atomic_store(&lim_closed, 0);
    seda_stage_options_t bo = { .name = "blocker",
                                .handler = lim_block_handler,
                                .drop = lim_drop,
                                .queue_capacity = 16,
                                .bind_to_thread = 1,
                                .thread_index = 0 };
    seda_stage_t *blocker;
    CHECK_OK(seda_stage_create(rt, &bo, &blocker));
    seda_stage_options_t ro = { .name = "reader",
                                .handler = lim_read_handler,
                                .drop = release_event_cb,
                                .queue_capacity = 256,
                                .bind_to_thread = 1,
                                .thread_index = 1 };
    seda_stage_t *reader;
    CHECK_OK(seda_stage_create(rt, &ro, &reader));
    /* Hand-off: one listening socket, on loop 0; connections go to loop 0,
     * then loop 1. */
    seda_listen_options_t lo = { .host = "127.0.0.1",
                                 .accept_mode = SEDA_ACCEPT_HANDOFF,
                                 .read_sink = reader,
                                 .max_connections = 1 };
    seda_listener_t *ls;
    CHECK_OK(seda_listen(rt, &lo, &ls));
    uint16_t port = seda_listener_port(ls);
    int x = dial(port); /* to loop 0: closed again */
    WAIT_UNTIL(seda_listener_connections(ls) == 1);
    reset_close(x);
    WAIT_UNTIL(atomic_load(&lim_closed) == 1 && seda_listener_connections(ls) == 0);
    int a = dial(port); /* to loop 1: the one open connection */
    WAIT_UNTIL(seda_listener_connections(ls) == 1);
    int b = dial(port); /* waits in the backlog: loop 0 pauses at the limit */
    WAIT_UNTIL(atomic_load(&ls->max_paused) == 1);
    static int token;
    CHECK_OK(seda_stage_enqueue(blocker, &token));
    WAIT_UNTIL(atomic_load(&lim_blocked));
    seda_listener_close(ls); /* CTL_CLOSE waits in loop 0's inbox */
    reset_close(a);          /* loop 1 closes it and posts loop 0 a resume */
    WAIT_UNTIL(atomic_load(&lim_closed) == 2);
    atomic_store(&lim_unblock, 1); /* the close, then the resume */
    char c;
    CHECK(recv(b, &c, 1, 0) <= 0); /* reset with the listening socket */
    close(b);
    seda_stage_release(reader);
    seda_stage_release(blocker);
    seda_runtime_destroy(rt);
}

/* ---- descriptors past FD_SETSIZE ------------------------------------------------------- */

/* Takes every free descriptor below FD_SETSIZE (so that the next ones
 * opened are numbered FD_SETSIZE or more); fd_unfill gives them back. */
static int fd_filler[FD_SETSIZE];
static int fd_nfill;

static void fd_fill(void)
{
    fd_nfill = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        if (fd >= FD_SETSIZE) {
            close(fd);
            break;
        }
        fd_filler[fd_nfill++] = fd;
    }
}

static void fd_unfill(void)
{
    for (int i = 0; i < fd_nfill; i++)
        close(fd_filler[i]);
    fd_nfill = 0;
}

/* Raises the soft descriptor limit past FD_SETSIZE; false if it cannot. */
static bool fd_room(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < FD_SETSIZE + 64) {
        struct rlimit more = rl;
        more.rlim_cur = rl.rlim_max < FD_SETSIZE + 64 ? rl.rlim_max : FD_SETSIZE + 64;
        setrlimit(RLIMIT_NOFILE, &more);
        CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    }
    if (rl.rlim_cur < FD_SETSIZE + 32) {
        fprintf(stderr, "  (descriptor limit too low: skipped)\n");
        return false;
    }
    return true;
}

/* With the low descriptors all taken, the listening sockets get numbers
 * of FD_SETSIZE and more, which select cannot watch. seda_listen must
 * then refuse (-EMFILE) rather than return a listener that never accepts;
 * the other backends watch any number and echo. */
static void test_listen_past_fd_setsize(void)
{
    if (!fd_room())
        return;
    seda_runtime_t *rt = make_runtime_on(backend);
    static struct echo_server es;
    memset(&es, 0, sizeof es);
    /* The stages first (they may take descriptors), then fill. */
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.rt = rt;
    for (int i = 0; i < THREADS; i++) {
        char name[24];
        snprintf(name, sizeof name, "fdset%d", i);
        seda_stage_options_t so = { .name = name,
                                    .handler = copy_echo_handler,
                                    .ctx = &es,
                                    .drop = release_event_cb,
                                    .queue_capacity = 64,
                                    .bind_to_thread = 1,
                                    .thread_index = (uint32_t)i };
        CHECK_OK(seda_stage_create(rt, &so, &srv.stages[i]));
    }
    fd_fill();
    seda_listen_options_t lo = { .host = "127.0.0.1", .read_sinks = srv.stages };
    seda_listener_t *ls = NULL;
    int r = seda_listen(rt, &lo, &ls);
    if (seda_runtime_poller(rt) == SEDA_POLLER_SELECT) {
        CHECK_RC(r, -EMFILE);
    } else {
        CHECK_OK(r);
        int fd = dial(seda_listener_port(ls));
        echo_once(fd, "far", 3);
        close(fd);
        WAIT_UNTIL(atomic_load(&es.closed) == 1);
        seda_listener_close(ls);
    }
    fd_unfill();
    for (int i = 0; i < THREADS; i++)
        seda_stage_release(srv.stages[i]);
    seda_runtime_destroy(rt);
}

/* A connection accepted with only an accept sink waits for its read sink;
 * when select cannot watch it (numbered FD_SETSIZE or more), setting the
 * sink must close it (CLOSED, -EMFILE) rather than leave it deaf for ever.
 * The other backends echo. */
static seda_stage_t *late_read[THREADS];

static int late_accept_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_ACCEPTED)
            CHECK_OK(seda_conn_set_sink(ev->conn, late_read[seda_conn_thread(ev->conn)]));
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_late_sink_past_fd_setsize(void)
{
    if (!fd_room())
        return;
    seda_runtime_t *rt = make_runtime_on(backend);
    static struct echo_server es;
    memset(&es, 0, sizeof es);
    for (int i = 0; i < THREADS; i++) {
        char name[24];
        snprintf(name, sizeof name, "late%d", i);
        seda_stage_options_t so = { .name = name,
                                    .handler = copy_echo_handler,
                                    .ctx = &es,
                                    .drop = release_event_cb,
                                    .queue_capacity = 64,
                                    .bind_to_thread = 1,
                                    .thread_index = (uint32_t)i };
        CHECK_OK(seda_stage_create(rt, &so, &late_read[i]));
    }
    seda_stage_options_t ao = { .name = "late-accept",
                                .handler = late_accept_handler,
                                .drop = release_event_cb,
                                .queue_capacity = 64 };
    seda_stage_t *acc;
    CHECK_OK(seda_stage_create(rt, &ao, &acc));
    seda_listen_options_t lo = { .host = "127.0.0.1", .accept_sink = acc };
    seda_listener_t *ls;
    CHECK_OK(seda_listen(rt, &lo, &ls));
    fd_fill(); /* the connection's socket is numbered FD_SETSIZE or more */
    int fd = dial(seda_listener_port(ls));
    if (seda_runtime_poller(rt) == SEDA_POLLER_SELECT) {
        WAIT_UNTIL(atomic_load(&es.closed) == 1); /* deaf for ever before the fix */
        CHECK_EQ(atomic_load(&es.last_close_error), -EMFILE);
        char c;
        CHECK(recv(fd, &c, 1, 0) <= 0);
    } else {
        echo_once(fd, "far", 3);
    }
    close(fd);
    fd_unfill();
    WAIT_UNTIL(atomic_load(&es.closed) == 1);
    seda_listener_close(ls);
    seda_stage_release(acc);
    for (int i = 0; i < THREADS; i++)
        seda_stage_release(late_read[i]);
    seda_runtime_destroy(rt);
}

/* ---- a release callback that closes ------------------------------------------------------- */

/* The release callback of a sent zero-copy buffer may call back into the
 * connection (it runs on the owner loop): here it closes it. The output
 * behind it is dropped then; the bytes just sent must still leave the
 * count once (not twice: seda_conn_queued wrapped around), a buffer sent
 * by the same send is released with 0 (it was given -ECANCELED), and
 * nothing may follow CLOSED (WRITABLE did, from the watermark check after
 * the callback). Variant 0: a mark separates the two buffers (the second
 * is never sent); variant 1: both go in one send. */
#define RC_MAX 32
static _Atomic int rc_types[RC_MAX], rc_n, rc_sentinel, rc_dropped;
static seda_conn_t *_Atomic rc_conn;
static int rc_variant;
static uint8_t rc_a[20], rc_b[10];
static int rc_sentinel_token;

static void rc_close_cb(void *ctx, const void *buf, int status)
{
    (void)buf;
    CHECK_OK(status);
    CHECK_OK(seda_conn_close(ctx, SEDA_CLOSE_NOW));
}

static void rc_second_cb(void *ctx, const void *buf, int status)
{
    (void)ctx;
    (void)buf;
    /* Variant 0: dropped unsent; variant 1: sent with the first. */
    CHECK_EQ(status, rc_variant == 0 ? -ECANCELED : 0);
    atomic_fetch_add(&rc_dropped, 1);
}

static int rc_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        if (events[i] == &rc_sentinel_token) {
            atomic_store(&rc_sentinel, 1);
            continue;
        }
        seda_io_event_t *ev = events[i];
        int k = atomic_load(&rc_n);
        if (k < RC_MAX) {
            atomic_store(&rc_types[k], (int)ev->type);
            atomic_store(&rc_n, k + 1);
        }
        if (ev->type == SEDA_IO_PACKET && !atomic_load(&rc_conn)) {
            seda_conn_t *c = ev->conn;
            seda_conn_retain(c);
            atomic_store(&rc_conn, c);
            CHECK_OK(seda_conn_write(c, rc_a, sizeof rc_a, rc_close_cb, c));
            if (rc_variant == 0)
                CHECK_OK(seda_conn_write_mark(c, 1));
            CHECK_OK(seda_conn_write(c, rc_b, sizeof rc_b, rc_second_cb, NULL));
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void rc_barrier_run(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    atomic_store((_Atomic int *)(t + 1), 1);
}

static void test_release_callback_closes(int variant)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    rc_variant = variant;
    atomic_store(&rc_n, 0);
    atomic_store(&rc_sentinel, 0);
    atomic_store(&rc_dropped, 0);
    atomic_store(&rc_conn, NULL);
    struct server srv;
    /* UNWRITABLE at 16 bytes queued, WRITABLE at 8. */
    seda_listen_options_t lo = { .conn = { .high_watermark = 16, .low_watermark = 8 } };
    serve(&srv, rt, rc_handler, NULL, &lo);
    int fd = dial(srv.port);
    write_all(fd, "go", 2);
    char back[sizeof rc_a];
    read_exact(fd, back, sizeof back); /* the first buffer was sent */
    WAIT_UNTIL(atomic_load(&rc_dropped) == 1);
    seda_conn_t *c = atomic_load(&rc_conn);
    /* Everything the owner loop did with c is done: a task posted to it
     * after, then a sentinel into the (FIFO) stage behind any event. */
    static struct {
        struct seda__task task;
        _Atomic int done;
    } barrier;
    atomic_store(&barrier.done, 0);
    barrier.task.run = rc_barrier_run;
    CHECK(seda__loop_post(seda__loop_of(rt, seda_conn_thread(c)), &barrier.task));
    WAIT_UNTIL(atomic_load(&barrier.done));
    CHECK_OK(seda_stage_enqueue(srv.stages[seda_conn_thread(c)], &rc_sentinel_token));
    WAIT_UNTIL(atomic_load(&rc_sentinel));
    int k = atomic_load(&rc_n);
    CHECK(k >= 2);
    CHECK_EQ(atomic_load(&rc_types[k - 1]), SEDA_IO_CLOSED); /* the last event */
    CHECK_EQ(seda_conn_queued(c), 0);
    seda_conn_release(c);
    close(fd);
    server_stop(&srv);
    seda_runtime_destroy(rt);
}

/* ---- read_stop, then close, in one turn ---------------------------------------------------- */

/* On io_uring, read_stop stops the connection's recv: its last completion
 * comes with the next wait. A close in the same turn must still wait for
 * that completion before the connection's memory may go (it took the
 * stopped recv for ended, and the completion then reached a freed
 * connection: ASan reports the use after free). Every backend runs it. */
static _Atomic int sc_closed;

static int sc_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            CHECK_OK(seda_conn_read_stop(ev->conn));
            CHECK_OK(seda_conn_close(ev->conn, SEDA_CLOSE_NOW));
        } else if (ev->type == SEDA_IO_CLOSED) {
            atomic_fetch_add(&sc_closed, 1);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_read_stop_then_close(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    atomic_store(&sc_closed, 0);
    struct server srv;
    serve(&srv, rt, sc_handler, NULL, NULL);
    enum { N = 8 };
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = dial(srv.port);
        write_all(fd[i], "bye", 3);
    }
    WAIT_UNTIL(atomic_load(&sc_closed) == N);
    for (int i = 0; i < N; i++) {
        char c;
        CHECK(recv(fd[i], &c, 1, 0) <= 0);
        /* More input for a closed connection, and time for the stopped
         * receives' last completions (a round trip through a new one). */
        close(fd[i]);
    }
    atomic_store(&sc_closed, 0);
    int last = dial(srv.port);
    write_all(last, "bye", 3);
    WAIT_UNTIL(atomic_load(&sc_closed) == 1);
    close(last);
    server_stop(&srv);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- a huge copy from another thread ------------------------------------------------------- */

/* seda_conn_write_copy from a thread other than the owner copies the bytes
 * into the posted request. A length the hard limit refuses anyway is not
 * copied (nor allocated: SIZE_MAX - 8 wrapped the allocation's size and the
 * copy ran past it); the owner applies the clog policy as for its own
 * write: here SEDA_CLOG_NOTIFY, so CLOGGED (then WRITABLE: nothing is
 * queued) and the connection stays usable. */
static _Atomic int hc_clogged, hc_writable;
static seda_conn_t *_Atomic hc_conn;

static int hc_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET && !atomic_load(&hc_conn)) {
            seda_conn_retain(ev->conn);
            atomic_store(&hc_conn, ev->conn);
        } else if (ev->type == SEDA_IO_CLOGGED) {
            atomic_fetch_add(&hc_clogged, 1);
        } else if (ev->type == SEDA_IO_WRITABLE) {
            atomic_fetch_add(&hc_writable, 1);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_huge_copy_from_outside(void)
{
    seda_runtime_t *rt = make_runtime_on(backend);
    atomic_store(&hc_clogged, 0);
    atomic_store(&hc_writable, 0);
    atomic_store(&hc_conn, NULL);
    struct server srv;
    seda_listen_options_t lo = { .conn = { .clog_policy = SEDA_CLOG_NOTIFY } };
    serve(&srv, rt, hc_handler, NULL, &lo);
    int fd = dial(srv.port);
    write_all(fd, "x", 1);
    WAIT_UNTIL(atomic_load(&hc_conn) != NULL);
    seda_conn_t *c = atomic_load(&hc_conn);
    static const char small[16] = "not that long";
    CHECK_OK(seda_conn_write_copy(c, small, SIZE_MAX - 8)); /* posted: refused there */
    WAIT_UNTIL(atomic_load(&hc_clogged) == 1);
    WAIT_UNTIL(atomic_load(&hc_writable) == 1);
    CHECK_OK(seda_conn_write_copy(c, "ok", 2));
    char back[2];
    read_exact(fd, back, 2);
    CHECK(memcmp(back, "ok", 2) == 0);
    seda_conn_release(c);
    close(fd);
    server_stop(&srv);
    seda_runtime_destroy(rt);
}

/* ---- statistics while the socket state goes ------------------------------------------------- */

/* After seda_runtime_shutdown the runtime stays valid, and the socket state
 * of a loop lives on while the application holds events; the thread that
 * releases the last one frees it. seda_runtime_io_stats read that state
 * (use after free when the two met: ASan; a race, so several rounds). The
 * counters now live in the loop. */
static seda_io_event_t *_Atomic st_held;
static seda_runtime_t *_Atomic st_rt;
static _Atomic int st_stop;
static _Atomic uint64_t st_sum;

static int st_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET && !atomic_load(&st_held)) {
            atomic_store(&st_held, ev); /* kept past the shutdown */
            continue;
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void *st_reader(void *arg)
{
    (void)arg;
    seda_runtime_t *rt = atomic_load(&st_rt);
    while (!atomic_load(&st_stop)) {
        for (uint32_t i = 0; i < THREADS; i++) {
            seda_io_stats_t st;
            CHECK_OK(seda_runtime_io_stats(rt, i, &st));
            atomic_fetch_add(&st_sum, st.accepted);
        }
    }
    return NULL;
}

static void test_stats_while_state_goes(void)
{
    for (int round = 0; round < 40; round++) {
        atomic_store(&st_held, NULL);
        atomic_store(&st_stop, 0);
        seda_runtime_t *rt = make_runtime_on(backend);
        atomic_store(&st_rt, rt);
        struct server srv;
        serve(&srv, rt, st_handler, NULL, NULL);
        int fd = dial(srv.port);
        write_all(fd, "x", 1);
        WAIT_UNTIL(atomic_load(&st_held) != NULL);
        server_stop(&srv);
        CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0));
        pthread_t t;
        CHECK(pthread_create(&t, NULL, st_reader, NULL) == 0);
        sched_yield();
        seda_io_event_release(atomic_load(&st_held)); /* the last: frees the state */
        atomic_store(&st_stop, 1);
        pthread_join(t, NULL);
        close(fd);
        seda_runtime_destroy(rt);
    }
}

int main(int argc, char **argv)
{
    FOR_EACH_BACKEND(argc, argv, {
        test_idle_timeout_far();
        test_idle_after_sleep();
        test_clog_single_write();
        test_listen_past_fd_setsize();
        test_late_sink_past_fd_setsize();
        test_release_callback_closes(0);
        test_release_callback_closes(1);
        test_read_stop_then_close();
        test_huge_copy_from_outside();
        test_stats_while_state_goes();
        test_close_paused_listener();
        test_writable_full_sink_budget();
    });
    return 0;
}
