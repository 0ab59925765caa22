/* Idle keep-alive connections (see sload_idle.h). */
#define _GNU_SOURCE
#include "sload_idle.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sload_net.h"

enum { ST_NEW, ST_CONNECTING, ST_READING, ST_IDLE, ST_FAILED };
enum { HEAD_CAP = 2048 };

typedef struct conn {
    int state;
    int fd;
    uint32_t head_len;
    int64_t body_left; /* -1 until the head is complete */
    char *head;        /* HEAD_CAP bytes while reading the head */
} conn_t;

static void fail(conn_t *c, int ep, sload_idle_t *out)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->head);
    c->head = NULL;
    c->state = ST_FAILED;
    out->failed++;
}

/* The Content-Length of a complete head, or -1 when missing or malformed. */
static int64_t content_length(const char *head, size_t len)
{
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            char *e;
            long long v = strtoll(p + 15, &e, 10);
            return (v >= 0 && e <= eol) ? (int64_t)v : -1;
        }
        p = eol + 2;
    }
    return -1;
}

/* Reads what arrived; moves the connection to ST_IDLE when its response is whole. */
static void on_readable(conn_t *c, int ep, sload_idle_t *out)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            fail(c, ep, out);
            return;
        }
        size_t used = 0;
        if (c->body_left < 0) {
            size_t take = (size_t)n;
            if (take > HEAD_CAP - c->head_len)
                take = HEAD_CAP - c->head_len;
            memcpy(c->head + c->head_len, buf, take);
            size_t before = c->head_len;
            c->head_len += (uint32_t)take;
            char *blank = memmem(c->head, c->head_len, "\r\n\r\n", 4);
            if (!blank) {
                if (c->head_len == HEAD_CAP)
                    fail(c, ep, out);
                continue;
            }
            size_t head_len = (size_t)(blank - c->head) + 4;
            if (c->head_len < 12 || memcmp(c->head, "HTTP/1.", 7) != 0 || c->head[9] != '2') {
                fail(c, ep, out);
                return;
            }
            c->body_left = content_length(c->head, head_len);
            if (c->body_left < 0) {
                fail(c, ep, out);
                return;
            }
            used = head_len - before;
            free(c->head);
            c->head = NULL;
        }
        int64_t rest = (int64_t)((size_t)n - used);
        if (rest > c->body_left) { /* bytes beyond the response: not an idle connection */
            fail(c, ep, out);
            return;
        }
        c->body_left -= rest;
        if (c->body_left == 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            c->state = ST_IDLE;
            out->idle++;
            return;
        }
    }
}

int sload_idle_open(uint16_t port, const char *path, uint32_t count, uint32_t window,
                    double timeout_s, sload_idle_t *out)
{
    memset(out, 0, sizeof *out);
    out->count = count;
    if (window == 0)
        window = 1;
    char req[512];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
                           path ? path : "/", (unsigned)port);
    if (req_len <= 0 || (size_t)req_len >= sizeof req)
        return -EINVAL;
    conn_t *conns = calloc(count ? count : 1, sizeof *conns);
    out->fds = malloc((count ? count : 1) * sizeof *out->fds);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !out->fds || ep < 0) {
        int err = ep < 0 ? -errno : -ENOMEM;
        if (ep >= 0)
            close(ep);
        free(conns);
        free(out->fds);
        out->fds = NULL;
        return err;
    }
    int64_t start = sload_now_ns();
    int64_t deadline = start + (int64_t)(timeout_s * 1e9);
    uint32_t next = 0, busy = 0; /* next to start; started and not yet idle or failed */
    struct epoll_event evs[256];
    while ((next < count || busy > 0) && sload_now_ns() < deadline) {
        while (next < count && busy < window) {
            conn_t *c = &conns[next];
            c->fd = sload_connect_start(port);
            c->body_left = -1;
            c->head = malloc(HEAD_CAP);
            struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = next };
            next++;
            if (c->fd < 0 || !c->head || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
                fail(c, ep, out);
                continue;
            }
            c->state = ST_CONNECTING;
            busy++;
        }
        int64_t left_ms = (deadline - sload_now_ns()) / 1000000;
        int n = epoll_wait(ep, evs, 256, left_ms > 100 ? 100 : (int)left_ms + 1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            conn_t *c = &conns[evs[i].data.u32];
            int before = c->state;
            if (c->state == ST_CONNECTING) {
                if (sload_connect_result(c->fd) != 0 ||
                    sload_write_all(c->fd, req, (size_t)req_len) != 0) {
                    fail(c, ep, out);
                } else {
                    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
                                              .data.u32 = evs[i].data.u32 };
                    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
                        fail(c, ep, out);
                    else
                        c->state = ST_READING;
                }
            } else if (c->state == ST_READING) {
                on_readable(c, ep, out);
            }
            if (before != c->state && (c->state == ST_IDLE || c->state == ST_FAILED))
                busy--;
        }
    }
    for (uint32_t i = 0; i < count; i++) {
        conn_t *c = &conns[i];
        if (c->state != ST_IDLE && c->state != ST_FAILED) {
            if (c->state == ST_NEW)
                c->fd = -1;
            fail(c, ep, out); /* unfinished at the timeout */
        }
        out->fds[i] = c->state == ST_IDLE ? c->fd : -1;
    }
    close(ep);
    free(conns);
    out->open_s = (double)(sload_now_ns() - start) / 1e9;
    return 0;
}

uint32_t sload_idle_still_open(const sload_idle_t *idle)
{
    uint32_t open = 0;
    for (uint32_t i = 0; idle->fds && i < idle->count; i++) {
        if (idle->fds[i] < 0)
            continue;
        struct pollfd p = { .fd = idle->fds[i], .events = POLLIN | POLLRDHUP };
        if (poll(&p, 1, 0) == 0)
            open++;
    }
    return open;
}

void sload_idle_close(sload_idle_t *idle)
{
    for (uint32_t i = 0; idle->fds && i < idle->count; i++)
        if (idle->fds[i] >= 0)
            close(idle->fds[i]);
    free(idle->fds);
    idle->fds = NULL;
}
