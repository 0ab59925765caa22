/*
 * The seed's HTTP baselines, written for the comparison: the 8 KB page over
 * HTTP/1.1 keep-alive with blocking I/O, from
 *   http-pool:   a pool of 150 threads, each accepting and serving one
 *                connection at a time (connections beyond 150 wait in the
 *                listen backlog, as the seed's thread-pool server made them);
 *   http-thread: a thread per connection (the seed's "forking" server).
 * Pipelined requests are answered in order, in one writev per read.
 */
#define _GNU_SOURCE
#include "baseline.h"
#include "http_request.h"
#include "sload_net.h"
#include "tserver.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BUF 16384 /* the largest request head accepted (then 431) */
#define MAX_IOV 64

/* Writes every iovec; 0, or -1 when the peer is gone. */
static int flush(int fd, struct iovec *iov, int n)
{
    int i = 0;
    while (i < n) {
        ssize_t k = writev(fd, iov + i, n - i);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (i < n && (size_t)k >= iov[i].iov_len) {
            k -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= (size_t)k;
        }
    }
    return 0;
}

static void serve(struct tserver *s, int fd)
{
    char buf[BUF];
    struct iovec iov[MAX_IOV];
    size_t len = 0, scan = 0; /* bytes held; where the search for CRLFCRLF resumes */
    uint64_t skip = 0;        /* body bytes of the last request still to discard */
    uint64_t requests = 0, bytes = 0;
    int closing = 0;
    while (!closing) {
        ssize_t n = read(fd, buf + len, BUF - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        bytes += (uint64_t)n;
        len += (size_t)n;
        size_t start = 0;
        int niov = 0;
        for (;;) {
            if (skip) {
                size_t k = len - start < skip ? len - start : (size_t)skip;
                start += k;
                skip -= k;
                scan = start;
                if (skip)
                    break;
            }
            /* RFC 9112: ignore empty lines before a request line. */
            while (len - start >= 2 && buf[start] == '\r' && buf[start + 1] == '\n')
                start += 2;
            if (scan < start)
                scan = start;
            char *e = memmem(buf + scan, len - scan, "\r\n\r\n", 4);
            if (!e) {
                scan = len - start >= 3 ? len - 3 : start;
                break;
            }
            size_t head = (size_t)(e + 4 - (buf + start));
            struct http_request r;
            http_parse_request(buf + start, head, &r);
            start += head;
            scan = start;
            requests++;
            niov += http_response_iov(&r, iov + niov);
            skip = r.body_length;
            if (r.close) {
                closing = 1;
                break;
            }
            if (niov > MAX_IOV - 2) {
                if (flush(fd, iov, niov) != 0)
                    goto done;
                niov = 0;
            }
        }
        if (niov && flush(fd, iov, niov) != 0)
            break;
        if (closing)
            break;
        memmove(buf, buf + start, len - start);
        len -= start;
        scan -= start;
        if (len == BUF) { /* a head larger than the buffer */
            int k = http_response_too_large(iov);
            flush(fd, iov, k);
            break;
        }
    }
done:
    if (closing)
        shutdown(fd, SHUT_WR); /* the response is complete: FIN after it */
    atomic_fetch_add_explicit(&s->units, requests, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes_in, bytes, memory_order_relaxed);
}

static int run(int argc, char **argv, const char *name, uint32_t pool_default)
{
    static struct tserver s;
    s.name = name;
    s.backlog = 4096;
    s.stack_size = 64 * 1024;
    s.pool_threads = pool_default;
    static const struct option longs[] = {
        {"port", required_argument, 0, 'p'},     {"threads", required_argument, 0, 't'},
        {"stack-kb", required_argument, 0, 'k'}, {"backlog", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:t:k:b:h", longs, NULL)) != -1) {
        switch (c) {
        case 'p': s.port = (uint16_t)atoi(optarg); break;
        case 't': s.pool_threads = (uint32_t)atoi(optarg); break;
        case 'k': s.stack_size = (size_t)atoi(optarg) * 1024; break;
        case 'b': s.backlog = atoi(optarg); break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: seda-baseline %s [--port N] %s[--stack-kb K] [--backlog N]\n"
                    "  Serves the 8 KB page at / and /index.html over HTTP/1.1 keep-alive,\n"
                    "  blocking I/O, %s. Port 0 picks one.\n",
                    name, pool_default ? "[--threads N] " : "",
                    pool_default ? "a pool of --threads threads (150)" : "a thread per connection");
            return c == 'h' ? 0 : 2;
        }
    }
    if (pool_default && s.pool_threads == 0) {
        fprintf(stderr, "%s: --threads must be at least 1\n", name);
        return 2;
    }
    if (!pool_default)
        s.pool_threads = 0;
    http_responses_init();
    s.serve = serve;
    tserver_units_name = "requests";
    return tserver_run(&s);
}

int baseline_http_pool(int argc, char **argv) { return run(argc, argv, "http-pool", 150); }
int baseline_http_thread(int argc, char **argv) { return run(argc, argv, "http-thread", 0); }
