/*
 * The echo anchor: an echo server on libuv, the C event loop people pick for
 * this, written the way its users write a fast one: one loop per thread
 * (each with its own SO_REUSEPORT listener when --threads > 1), reads into a
 * per-loop buffer, uv_try_write first, and uv_write of the remainder only
 * when the socket is full (reading pauses while 64 KiB are queued).
 */
#define _GNU_SOURCE
#include "baseline.h"
#include "sload_net.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF 65536
#define HIGH_WATER 65536

struct uvloop {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_async_t stop;
    pthread_t tid;
    uint64_t connections, bytes;
    char buf[READ_BUF];
};

struct wreq {
    uv_write_t req;
    char data[];
};

static void on_close(uv_handle_t *h)
{
    if (h->type == UV_TCP && h->data != h->loop->data) /* a connection, not the listener */
        free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct uvloop *l = h->loop->data;
    buf->base = l->buf;
    buf->len = READ_BUF;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    uv_stream_t *s = req->handle;
    free(req);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (s->write_queue_size < HIGH_WATER / 2 && !uv_is_closing((uv_handle_t *)s))
        uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (nread == 0)
        return;
    struct uvloop *l = s->loop->data;
    l->bytes += (uint64_t)nread;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int w = uv_try_write(s, &b, 1);
    if (w == nread)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    size_t done = w > 0 ? (size_t)w : 0, rest = (size_t)nread - done;
    struct wreq *r = malloc(sizeof *r + rest);
    if (!r) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    memcpy(r->data, buf->base + done, rest);
    uv_buf_t rb = uv_buf_init(r->data, (unsigned)rest);
    if (uv_write(&r->req, s, &rb, 1, on_written) != 0) {
        free(r);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (s->write_queue_size >= HIGH_WATER)
        uv_read_stop(s);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct uvloop *l = server->loop->data;
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, c);
    c->data = NULL;
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, on_close);
        return;
    }
    l->connections++;
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, on_close);
}

static void on_stop(uv_async_t *a) { uv_walk(a->loop, close_any, NULL); }

static void *loop_main(void *p)
{
    struct uvloop *l = p;
    uv_run(&l->loop, UV_RUN_DEFAULT);
    return NULL;
}

int baseline_echo_uv(int argc, char **argv)
{
    uint16_t port = 0;
    int threads = 1, backlog = 4096;
    static const struct option longs[] = {{"port", required_argument, 0, 'p'},
                                          {"threads", required_argument, 0, 't'},
                                          {"backlog", required_argument, 0, 'b'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:t:b:h", longs, NULL)) != -1) {
        switch (c) {
        case 'p': port = (uint16_t)atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'b': backlog = atoi(optarg); break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: seda-baseline echo-uv [--port N] [--threads N] [--backlog N]\n"
                    "  Echo server on libuv %s: one loop per thread (SO_REUSEPORT). Port 0 picks one.\n",
                    uv_version_string());
            return c == 'h' ? 0 : 2;
        }
    }
    if (threads < 1) {
        fprintf(stderr, "echo-uv: --threads must be at least 1\n");
        return 2;
    }
    sload_raise_nofile();
    sigset_t stop;
    sload_block_stop_signals(&stop);
    struct uvloop *loops = calloc((size_t)threads, sizeof *loops);
    uint16_t bound = port;
    for (int i = 0; i < threads; i++) {
        struct uvloop *l = &loops[i];
        int fd = sload_listen(bound, backlog, threads > 1, 1, &bound);
        if (fd < 0) {
            fprintf(stderr, "echo-uv: cannot listen on 127.0.0.1:%u: %s\n", bound, strerror(-fd));
            return 1;
        }
        uv_loop_init(&l->loop);
        l->loop.data = l;
        uv_tcp_init(&l->loop, &l->server);
        l->server.data = l; /* marks the listener for on_close */
        int e = uv_tcp_open(&l->server, fd);
        if (e == 0)
            e = uv_listen((uv_stream_t *)&l->server, backlog, on_connection);
        if (e != 0) {
            fprintf(stderr, "echo-uv: %s\n", uv_strerror(e));
            return 1;
        }
        uv_async_init(&l->loop, &l->stop, on_stop);
        l->stop.data = l;
    }
    printf("echo-uv: listening on 127.0.0.1:%u\n", bound);
    fflush(stdout);
    for (int i = 0; i < threads; i++)
        pthread_create(&loops[i].tid, NULL, loop_main, &loops[i]);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    uint64_t conns = 0, bytes = 0;
    for (int i = 0; i < threads; i++)
        uv_async_send(&loops[i].stop);
    for (int i = 0; i < threads; i++) {
        pthread_join(loops[i].tid, NULL);
        uv_loop_close(&loops[i].loop);
        conns += loops[i].connections;
        bytes += loops[i].bytes;
    }
    free(loops);
    fprintf(stderr, "echo-uv: stopped (%s): %llu connections, %llu bytes echoed\n", strsignal(sig),
            (unsigned long long)conns, (unsigned long long)bytes);
    return 0;
}
