/*
 * The output side of the socket layer, over every poller backend: small
 * copies coalesce into one send per flush; WRITE_DONE marks; zero-copy
 * buffers released once sent (status 0) or when the connection dies
 * (-ECANCELED), on the owner's thread; sendfile; watermarks; a slow reader
 * hits the hard limit (closed, or CLOGGED and refused writes) and the
 * queue never holds more than the limit; half-close both ways; a peer that
 * resets mid-write (no SIGPIPE, from sendmsg or sendfile); close after flush.
 */
#include "socket_test.h"

#include <stdlib.h>
#include <sys/resource.h>

/* What the handlers saw: shared by the tests (reset by each). */
struct seen {
    seda_runtime_t *rt;
    _Atomic uint64_t types[16];
    _Atomic int64_t close_error;
    _Atomic uint64_t mark_tag;
    _Atomic uint64_t max_queued;
    _Atomic int refused, accepted_writes;
    _Atomic int released, release_status, release_wrong_thread;
    _Atomic int after_shutdown;       /* packets read after shutdown_write */
    _Atomic int write_after_shutdown; /* its return */
    int file_fd;
    size_t file_len;
    size_t burst; /* bytes written per packet by the slow-reader handler */
};

static struct seen seen;
static uint8_t big[8u << 20];

static void reset_seen(seda_runtime_t *rt)
{
    memset(&seen, 0, sizeof seen);
    seen.rt = rt;
    seen.file_fd = -1;
}

static void note(seda_io_event_t *ev)
{
    /* The details first: a test that sees the count reads them. */
    if (ev->type == SEDA_IO_CLOSED)
        atomic_store(&seen.close_error, ev->error);
    if (ev->type == SEDA_IO_WRITE_DONE)
        atomic_store(&seen.mark_tag, ev->tag);
    atomic_fetch_add(&seen.types[ev->type], 1);
}

static void track_queued(seda_conn_t *c)
{
    uint64_t q = seda_conn_queued(c);
    if (q > atomic_load(&seen.max_queued))
        atomic_store(&seen.max_queued, q);
}

static void released(void *ctx, const void *buf, int status)
{
    (void)buf;
    (void)ctx;
    if (seda_runtime_thread_index(seen.rt) < 0)
        atomic_fetch_add(&seen.release_wrong_thread, 1);
    atomic_store(&seen.release_status, status);
    atomic_fetch_add(&seen.released, 1);
}

/* ---- coalescing and marks ----------------------------------------------------------- */

static int burst_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        note(ev);
        if (ev->type == SEDA_IO_PACKET) {
            for (int k = 0; k < 100; k++) {
                char line[10];
                memset(line, '0' + k % 10, sizeof line);
                CHECK_OK(seda_conn_write_copy(ev->conn, line, sizeof line));
            }
            CHECK_OK(seda_conn_write_mark(ev->conn, 0xfeed));
        } else if (ev->type == SEDA_IO_READ_EOF) {
            seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_coalesce_and_mark(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    struct server s;
    serve(&s, rt, burst_handler, NULL, NULL);
    int c = dial(s.port);
    write_all(c, "x", 1);
    char back[1000];
    read_exact(c, back, sizeof back);
    for (int k = 0; k < 1000; k++)
        CHECK_EQ(back[k], '0' + (k / 10) % 10);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_WRITE_DONE]) == 1);
    CHECK_EQ(atomic_load(&seen.mark_tag), 0xfeed);
    /* 100 writes of 10 bytes went out in one send system call. */
    CHECK_EQ(IO_STAT(rt, writes), 1);
    CHECK_EQ(IO_STAT(rt, bytes_out), 1000);
    close(c);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- zero copy: released once sent, or when the connection dies ---------------------- */

static int zc_handler(void *ctx, void **events, size_t n)
{
    size_t len = (size_t)(uintptr_t)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        note(ev);
        if (ev->type == SEDA_IO_PACKET && ev->data[0] == 'w') {
            CHECK_OK(seda_conn_write(ev->conn, big, len, released, NULL));
        } else if (ev->type == SEDA_IO_PACKET && ev->data[0] == 'k') {
            CHECK_OK(seda_conn_write(ev->conn, big, len, released, NULL));
            CHECK_OK(seda_conn_close(ev->conn, SEDA_CLOSE_NOW)); /* before any flush */
        } else if (ev->type == SEDA_IO_READ_EOF) {
            seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_zero_copy_release(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    struct server s;
    seda_listen_options_t lo = { .conn.hard_limit = 4u << 20 };
    serve(&s, rt, zc_handler, (void *)(uintptr_t)(3u << 20), &lo);
    int c = dial(s.port);
    write_all(c, "w", 1);
    static uint8_t back[3u << 20];
    read_exact(c, back, sizeof back);
    CHECK(memcmp(back, big, sizeof back) == 0);
    WAIT_UNTIL(atomic_load(&seen.released) == 1);
    CHECK_EQ(atomic_load(&seen.release_status), 0);
    /* Written and closed at once: the buffer comes back unsent. */
    int c2 = dial(s.port);
    write_all(c2, "k", 1);
    WAIT_UNTIL(atomic_load(&seen.released) == 2);
    CHECK_EQ(atomic_load(&seen.release_status), -ECANCELED);
    CHECK_EQ(atomic_load(&seen.release_wrong_thread), 0);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    CHECK_EQ(atomic_load(&seen.close_error), 0);
    close(c);
    close(c2);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 2);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- sendfile ----------------------------------------------------------------------- */

static int file_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        note(ev);
        if (ev->type == SEDA_IO_PACKET) {
            CHECK_OK(seda_conn_write_copy(ev->conn, "HEAD", 4));
            CHECK_OK(seda_conn_sendfile(ev->conn, seen.file_fd, 100, seen.file_len - 100, released,
                                        NULL));
            CHECK_OK(seda_conn_write_copy(ev->conn, "TAIL", 4));
            CHECK_OK(seda_conn_write_mark(ev->conn, 42));
        } else if (ev->type == SEDA_IO_READ_EOF) {
            seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_sendfile(void)
{
    int fds = count_fds();
    char path[] = "/tmp/seda-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    size_t len = 5u << 20;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, big + off, len - off);
        CHECK(w > 0);
        off += (size_t)w;
    }
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    seen.file_fd = fd;
    seen.file_len = len;
    struct server s;
    serve(&s, rt, file_handler, NULL, NULL);
    int c = dial(s.port);
    write_all(c, "f", 1);
    static uint8_t back[(5u << 20) + 8];
    read_exact(c, back, len - 100 + 8);
    CHECK(memcmp(back, "HEAD", 4) == 0);
    CHECK(memcmp(back + 4, big + 100, len - 100) == 0);
    CHECK(memcmp(back + 4 + len - 100, "TAIL", 4) == 0);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_WRITE_DONE]) == 1);
    CHECK_EQ(atomic_load(&seen.mark_tag), 42);
    CHECK_EQ(atomic_load(&seen.released), 1);
    CHECK_EQ(atomic_load(&seen.release_status), 0);
    close(c);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    server_stop(&s);
    seda_runtime_destroy(rt);
    close(fd);
    CHECK_EQ(count_fds(), fds);
}

/* ---- a slow reader ------------------------------------------------------------------ */

static int flood_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        note(ev);
        if (ev->type == SEDA_IO_PACKET) {
            /* A careless application: it writes whatever the watermarks say. */
            for (size_t k = 0; k < ev->len; k++) {
                int r = seda_conn_write_copy(ev->conn, big, seen.burst);
                track_queued(ev->conn);
                if (r == 0)
                    atomic_fetch_add(&seen.accepted_writes, 1);
                else if (r == -ENOBUFS)
                    atomic_fetch_add(&seen.refused, 1);
                else
                    CHECK_RC(r, -EPIPE);
            }
        }
        seda_io_event_release(ev); /* READ_EOF's release closes */
    }
    return 0;
}

static void test_slow_reader_closed(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    seen.burst = 256u << 10;
    struct server s;
    seda_listen_options_t lo = { .conn.hard_limit = 1u << 20 };
    serve(&s, rt, flood_handler, NULL, &lo);
    int c = dial(s.port);
    int small = 4096;
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* 200 requests for 256 KiB each, and never a byte read. */
    for (int k = 0; k < 200 && !atomic_load(&seen.types[SEDA_IO_CLOSED]); k++) {
        if (send(c, "r", 1, MSG_NOSIGNAL) != 1)
            break;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    CHECK_EQ(atomic_load(&seen.close_error), -ENOBUFS);
    CHECK(atomic_load(&seen.max_queued) <= (1u << 20));
    CHECK(IO_STAT(rt, clogged) >= 1);
    close(c);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

static void test_slow_reader_notified(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    seen.burst = 256u << 10;
    struct server s;
    seda_listen_options_t lo = { .conn = { .hard_limit = 1u << 20,
                                           .clog_policy = SEDA_CLOG_NOTIFY } };
    serve(&s, rt, flood_handler, NULL, &lo);
    int c = dial(s.port);
    /* One byte per request, until the server refuses a write (once the
     * kernel's socket buffers are full, 4 requests fill the queue). */
    for (int k = 0; k < 400 && !atomic_load(&seen.refused); k++) {
        CHECK_EQ(send(c, "r", 1, MSG_NOSIGNAL), 1);
        WAIT_UNTIL(atomic_load(&seen.accepted_writes) + atomic_load(&seen.refused) == k + 1);
    }
    CHECK(atomic_load(&seen.refused) >= 1);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOGGED]) == 1);
    /* Unwritable now (and maybe before, while the socket buffers filled). */
    uint64_t unw = atomic_load(&seen.types[SEDA_IO_UNWRITABLE]);
    CHECK(unw >= 1);
    CHECK_EQ(atomic_load(&seen.types[SEDA_IO_WRITABLE]), unw - 1);
    CHECK(atomic_load(&seen.max_queued) <= (1u << 20));
    CHECK_EQ(atomic_load(&seen.types[SEDA_IO_CLOSED]), 0); /* still open */
    /* The reader catches up: everything accepted arrives, then WRITABLE. */
    size_t want = (size_t)atomic_load(&seen.accepted_writes) * seen.burst;
    static uint8_t sink[1u << 16];
    for (size_t got = 0; got < want;) {
        ssize_t r = recv(c, sink, sizeof sink < want - got ? sizeof sink : want - got, 0);
        CHECK(r > 0);
        got += (size_t)r;
    }
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_WRITABLE]) == unw);
    /* Writable again: writes are accepted. */
    int before = atomic_load(&seen.accepted_writes);
    CHECK_EQ(send(c, "r", 1, MSG_NOSIGNAL), 1);
    WAIT_UNTIL(atomic_load(&seen.accepted_writes) == before + 1);
    close(c);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- half-close --------------------------------------------------------------------- */

static int half_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        note(ev);
        if (ev->type == SEDA_IO_PACKET && ev->data[0] == 's') {
            CHECK_OK(seda_conn_write_copy(ev->conn, "bye", 3));
            CHECK_OK(seda_conn_shutdown_write(ev->conn));
            atomic_store(&seen.write_after_shutdown, seda_conn_write_copy(ev->conn, "x", 1));
        } else if (ev->type == SEDA_IO_PACKET) {
            atomic_fetch_add(&seen.after_shutdown, (int)ev->len);
        } else if (ev->type == SEDA_IO_READ_EOF) {
            seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_half_close(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    struct server s;
    seda_listen_options_t lo = { .conn.half_close = 1 };
    serve(&s, rt, half_handler, NULL, &lo);
    int c = dial(s.port);
    write_all(c, "s", 1);
    char b[8];
    read_exact(c, b, 3);
    CHECK(memcmp(b, "bye", 3) == 0);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0); /* the server shut its writing side */
    CHECK_RC(atomic_load(&seen.write_after_shutdown), -EPIPE);
    /* It still reads. */
    write_all(c, "more", 4);
    WAIT_UNTIL(atomic_load(&seen.after_shutdown) == 4);
    /* The client half-closes too: READ_EOF (the connection allows half
     * closure: the handler closes it). */
    shutdown(c, SHUT_WR);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    CHECK_EQ(atomic_load(&seen.types[SEDA_IO_READ_EOF]), 1);
    CHECK_EQ(atomic_load(&seen.close_error), 0);
    close(c);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

/* ---- a peer that resets mid-write ---------------------------------------------------------- */

static void reset_peer(int c)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c); /* RST, with the server's data unread */
}

static void test_reset_mid_write(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    struct server s;
    seda_listen_options_t lo = { .conn.hard_limit = 16u << 20 };
    serve(&s, rt, zc_handler, (void *)(uintptr_t)sizeof big, &lo);
    int c = dial(s.port);
    write_all(c, "w", 1);
    uint8_t b[4096];
    read_exact(c, b, sizeof b); /* it is writing */
    reset_peer(c);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    int64_t e = atomic_load(&seen.close_error);
    CHECK(e == -ECONNRESET || e == -EPIPE);
    WAIT_UNTIL(atomic_load(&seen.released) == 1);
    CHECK(atomic_load(&seen.release_status) < 0);
    server_stop(&s);

    /* The same with a file: sendfile has no MSG_NOSIGNAL. */
    char path[] = "/tmp/seda-reset-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    for (size_t off = 0; off < sizeof big;) {
        ssize_t w = write(fd, big + off, sizeof big - off);
        CHECK(w > 0);
        off += (size_t)w;
    }
    seen.file_fd = fd;
    seen.file_len = sizeof big;
    serve(&s, rt, file_handler, NULL, NULL);
    c = dial(s.port);
    write_all(c, "f", 1);
    read_exact(c, b, sizeof b);
    reset_peer(c);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 2);
    e = atomic_load(&seen.close_error);
    CHECK(e == -ECONNRESET || e == -EPIPE);
    WAIT_UNTIL(atomic_load(&seen.released) == 2);
    server_stop(&s);
    seda_runtime_destroy(rt);
    close(fd);
    CHECK_EQ(count_fds(), fds);
}

/* ---- close after flush ------------------------------------------------------------------ */

static int flush_close_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        note(ev);
        if (ev->type == SEDA_IO_PACKET) {
            CHECK_OK(seda_conn_write(ev->conn, big, 2u << 20, released, NULL));
            CHECK_OK(seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH));
            CHECK_OK(seda_conn_close(ev->conn, SEDA_CLOSE_AFTER_FLUSH)); /* again: fine */
            CHECK_RC(seda_conn_write_copy(ev->conn, "x", 1), -EPIPE);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void test_close_after_flush(void)
{
    int fds = count_fds();
    seda_runtime_t *rt = make_runtime_on(backend);
    reset_seen(rt);
    struct server s;
    seda_listen_options_t lo = { .conn.hard_limit = 4u << 20 };
    serve(&s, rt, flush_close_handler, NULL, &lo);
    int c = dial(s.port);
    write_all(c, "go", 2);
    static uint8_t back[2u << 20];
    read_exact(c, back, sizeof back);
    CHECK(memcmp(back, big, sizeof back) == 0);
    char x;
    CHECK_EQ(recv(c, &x, 1, 0), 0);
    WAIT_UNTIL(atomic_load(&seen.types[SEDA_IO_CLOSED]) == 1);
    CHECK_EQ(atomic_load(&seen.close_error), 0);
    CHECK_EQ(atomic_load(&seen.release_status), 0);
    close(c);
    server_stop(&s);
    seda_runtime_destroy(rt);
    CHECK_EQ(count_fds(), fds);
}

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 131 + (i >> 11));
#define RUN(t)                                                                      \
    do {                                                                            \
        int64_t t0_ = seda_clock_now(NULL);                                         \
        t();                                                                        \
        fprintf(stderr, "  %s: %.0f ms\n", #t, (seda_clock_now(NULL) - t0_) / 1e6); \
    } while (0)
    FOR_EACH_BACKEND(argc, argv, {
        RUN(test_coalesce_and_mark);
        RUN(test_zero_copy_release);
        RUN(test_sendfile);
        RUN(test_slow_reader_closed);
        RUN(test_slow_reader_notified);
        RUN(test_half_close);
        RUN(test_reset_mid_write);
        RUN(test_close_after_flush);
    });
    return 0;
}
