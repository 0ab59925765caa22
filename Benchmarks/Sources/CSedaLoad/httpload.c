/* seda-load's engine (see sload_httpload.h): closed and open loop, epoll, level triggered. */
#define _GNU_SOURCE
#include "sload_httpload.h"
#include "internal.h"
#include "sload_net.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define HDR_CAP 4096       /* the largest response head accepted */
#define READ_BUF 65536
#define RETRY_NS 10000000  /* a failed request is retried no sooner than 10 ms later */
#define NO_HEAP UINT32_MAX

enum {
    S_FREE,       /* nothing to do (after the window) */
    S_WAIT,       /* in the timer heap: thinking, or backing off after a failure */
    S_IDLE,       /* open loop: in the ring of connections ready for a request */
    S_CONNECTING, /* a request waits for its connection */
    S_ACTIVE,     /* a request is being sent or its response read */
};

struct client {
    int fd;
    uint8_t state;
    uint8_t want_out;      /* EPOLLOUT registered: the request's send was short */
    uint8_t closing;       /* this request said Connection: close */
    uint8_t measured;      /* this request was due inside the window */
    uint8_t conn_measured; /* this connect started inside the window */
    uint8_t fresh;         /* no request sent yet on this connection */
    uint8_t in_body;
    uint8_t server_close;  /* the response says the connection ends */
    uint32_t id;           /* global client index */
    uint32_t heap_idx;
    uint32_t on_conn;      /* requests sent on this connection */
    uint32_t sent;         /* request bytes sent */
    uint32_t hdr_len;      /* response head bytes held in hdr */
    int status;
    int64_t body_left;     /* -1: until EOF */
    uint64_t body_got;
    int64_t due;           /* when the current request was due */
    int64_t wake;          /* heap key */
    int64_t connect_start;
    char *hdr;
};

struct shared {
    sload_http_config_t cfg;
    char path[1024];
    char req[2][1200]; /* [0] keep-alive, [1] Connection: close */
    uint32_t req_len[2];
    int64_t t0, win_start, win_end, drain_end;
    uint32_t timeline_len;
};

struct worker {
    struct shared *sh;
    uint32_t index, nworkers;
    pthread_t tid;
    int ep;
    struct client *cl;
    uint32_t n;
    struct client **heap;
    uint32_t heap_n;
    struct client **ring; /* open loop: FIFO of clients ready for a request */
    uint32_t ring_head, ring_n;
    int64_t next_k;       /* open loop: this worker's next request in the schedule */
    double interval_ns;   /* open loop: between this worker's requests */
    int64_t first_due;
    uint64_t inflight;    /* requests started and not yet answered or failed */
    char *rbuf;
    sload_hist_t *ok_h, *other_h, *conn_h, *lag_h;
    uint64_t *timeline;
    uint64_t *per_client; /* indexed by global id */
    /* Private until joined. */
    uint64_t completed, ok, rejected, other, errors, connects, connect_errors, body_bytes;
    /* For the progress line: written by this worker only, read relaxed by the main thread. */
    _Atomic uint64_t p_done, p_ok, p_errors;
    _Atomic uint32_t p_open;
};

void sload_http_defaults(sload_http_config_t *cfg, uint16_t port, uint32_t clients, double duration_s)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = port;
    cfg->clients = clients;
    cfg->think_ms = 20;
    cfg->requests_per_connection = 100;
    cfg->warmup_s = 1;
    cfg->duration_s = duration_s;
    cfg->drain_s = 2;
    cfg->threads = 1;
    cfg->expect_body = -1;
}

double sload_jain(const uint64_t *x, uint32_t n)
{
    double s = 0, s2 = 0;
    for (uint32_t i = 0; i < n; i++) {
        s += (double)x[i];
        s2 += (double)x[i] * (double)x[i];
    }
    return s2 > 0 ? s * s / ((double)n * s2) : 1.0;
}

/* ---- the timer heap (min on wake) ---- */

static void heap_swap(struct worker *w, uint32_t a, uint32_t b)
{
    struct client *t = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = t;
    w->heap[a]->heap_idx = a;
    w->heap[b]->heap_idx = b;
}

static void heap_push(struct worker *w, struct client *c, int64_t wake)
{
    c->wake = wake;
    c->state = S_WAIT;
    uint32_t i = w->heap_n++;
    w->heap[i] = c;
    c->heap_idx = i;
    while (i > 0 && w->heap[(i - 1) / 2]->wake > w->heap[i]->wake) {
        heap_swap(w, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct client *heap_pop(struct worker *w)
{
    struct client *top = w->heap[0];
    w->heap_n--;
    if (w->heap_n > 0) {
        w->heap[0] = w->heap[w->heap_n];
        w->heap[0]->heap_idx = 0;
        uint32_t i = 0;
        for (;;) {
            uint32_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < w->heap_n && w->heap[l]->wake < w->heap[m]->wake)
                m = l;
            if (r < w->heap_n && w->heap[r]->wake < w->heap[m]->wake)
                m = r;
            if (m == i)
                break;
            heap_swap(w, i, m);
            i = m;
        }
    }
    top->heap_idx = NO_HEAP;
    return top;
}

/* ---- open loop: the ring of ready connections ---- */

static void ring_push(struct worker *w, struct client *c)
{
    c->state = S_IDLE;
    w->ring[(w->ring_head + w->ring_n++) % w->n] = c;
}

static struct client *ring_pop(struct worker *w)
{
    struct client *c = w->ring[w->ring_head];
    w->ring_head = (w->ring_head + 1) % w->n;
    w->ring_n--;
    return c;
}

static int64_t due_of(const struct worker *w, int64_t k)
{
    return w->first_due + (int64_t)((double)k * w->interval_ns);
}

/* ---- connections ---- */

static void close_conn(struct worker *w, struct client *c)
{
    if (c->fd < 0)
        return;
    close(c->fd); /* leaves the epoll set too */
    c->fd = -1;
    c->want_out = 0;
    c->on_conn = 0;
    sload__bump32(&w->p_open, (uint32_t)-1);
}

static void set_out(struct worker *w, struct client *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)on;
}

/* The client is ready for its next request: after think time, or at once in the open loop. */
static void next_request_later(struct worker *w, struct client *c, int64_t now, int failed)
{
    const sload_http_config_t *cfg = &w->sh->cfg;
    if (cfg->rate > 0) {
        if (failed)
            heap_push(w, c, now + RETRY_NS); /* back to the ring when it wakes */
        else
            ring_push(w, c);
        return;
    }
    int64_t think = (int64_t)(cfg->think_ms * 1e6);
    if (failed && think < RETRY_NS)
        think = RETRY_NS;
    if (now + think >= w->sh->win_end) {
        c->state = S_FREE; /* no request is issued after the window */
        return;
    }
    heap_push(w, c, now + think);
}

static void fail_request(struct worker *w, struct client *c, int64_t now, int connect_failure)
{
    if (connect_failure)
        w->connect_errors++;
    else
        w->errors++;
    sload__bump64(&w->p_errors, 1);
    w->inflight--;
    close_conn(w, c);
    next_request_later(w, c, now, 1);
}

static void push_request(struct worker *w, struct client *c, int64_t now)
{
    const struct shared *sh = w->sh;
    const char *req = sh->req[c->closing];
    uint32_t len = sh->req_len[c->closing];
    while (c->sent < len) {
        ssize_t k = send(c->fd, req + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_out(w, c, 1);
                return;
            }
            fail_request(w, c, now, 0);
            return;
        }
        c->sent += (uint32_t)k;
    }
    set_out(w, c, 0);
}

static void send_request(struct worker *w, struct client *c, int64_t now)
{
    const sload_http_config_t *cfg = &w->sh->cfg;
    c->state = S_ACTIVE;
    c->on_conn++;
    c->closing = cfg->requests_per_connection && c->on_conn >= cfg->requests_per_connection;
    c->sent = 0;
    c->hdr_len = 0;
    c->in_body = 0;
    c->server_close = 0;
    c->body_got = 0;
    if (!c->fresh && c->measured)
        sload_hist_record(w->lag_h, now - c->due);
    c->fresh = 0;
    push_request(w, c, now);
}

/* Starts the request due at c->due. */
static void start_request(struct worker *w, struct client *c, int64_t now)
{
    c->measured = c->due >= w->sh->win_start && c->due < w->sh->win_end;
    w->inflight++;
    if (c->fd >= 0) {
        send_request(w, c, now);
        return;
    }
    int fd = sload_connect_start(w->sh->cfg.port);
    if (fd < 0) {
        c->state = S_ACTIVE;
        fail_request(w, c, now, 1);
        return;
    }
    c->fd = fd;
    sload__bump32(&w->p_open, 1);
    c->state = S_CONNECTING;
    c->connect_start = now;
    c->conn_measured = now >= w->sh->win_start && now < w->sh->win_end;
    c->fresh = 1;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void on_connected(struct worker *w, struct client *c, uint32_t events, int64_t now)
{
    if (!(events & EPOLLOUT) || sload_connect_result(c->fd) != 0) {
        fail_request(w, c, now, 1);
        return;
    }
    w->connects++;
    if (c->conn_measured)
        sload_hist_record(w->conn_h, now - c->connect_start);
    send_request(w, c, now);
}

static void complete(struct worker *w, struct client *c, int64_t now)
{
    const struct shared *sh = w->sh;
    const sload_http_config_t *cfg = &sh->cfg;
    int ok = c->status >= 200 && c->status < 300;
    if (ok && cfg->expect_body >= 0 && c->body_got != (uint64_t)cfg->expect_body) {
        fail_request(w, c, now, 0);
        return;
    }
    w->inflight--;
    if (c->measured)
        sload_hist_record(ok ? w->ok_h : w->other_h, now - c->due);
    if (now >= sh->win_start && now < sh->win_end) {
        w->completed++;
        w->per_client[c->id]++;
        w->body_bytes += c->body_got;
        if (ok)
            w->ok++;
        else if (c->status == 503)
            w->rejected++;
        else
            w->other++;
    }
    uint64_t sec = (uint64_t)(now - sh->t0) / 1000000000u;
    if (sec < sh->timeline_len)
        w->timeline[sec]++;
    sload__bump64(&w->p_done, 1);
    if (ok)
        sload__bump64(&w->p_ok, 1);
    if (c->closing || c->server_close)
        close_conn(w, c);
    next_request_later(w, c, now, 0);
}

static int has_token(const char *v, size_t n, const char *token)
{
    size_t t = strlen(token);
    for (size_t i = 0; i + t <= n; i++)
        if (strncasecmp(v + i, token, t) == 0)
            return 1;
    return 0;
}

/* Parses a response head (ending with CRLFCRLF); 0, or -1 when it cannot be framed. */
static int parse_head(struct client *c, const char *p, size_t len)
{
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return -1;
    int minor = p[7] - '0';
    if (p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return -1;
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    int close = minor == 0, chunked = 0;
    int64_t length = -1;
    const char *end = p + len;
    const char *line = memmem(p, len, "\r\n", 2) + 2;
    while (line < end) {
        const char *le = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!le || le == line)
            break;
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(le - v);
            if (nl == 14 && strncasecmp(line, "content-length", 14) == 0) {
                length = 0;
                for (const char *d = v; d < le && *d >= '0' && *d <= '9'; d++)
                    length = length * 10 + (*d - '0');
            } else if (nl == 10 && strncasecmp(line, "connection", 10) == 0) {
                if (has_token(v, vl, "close"))
                    close = 1;
                else if (has_token(v, vl, "keep-alive"))
                    close = 0;
            } else if (nl == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                chunked = 1;
            }
        }
        line = le + 2;
    }
    if (chunked)
        return -1; /* the page is never chunked; a server that does is not measured here */
    c->server_close = (uint8_t)close;
    if (c->status == 204 || c->status == 304 || c->status / 100 == 1)
        length = 0;
    if (length < 0) {
        c->server_close = 1; /* the body ends at EOF */
    }
    c->body_left = length;
    c->in_body = 1;
    return 0;
}

static void on_readable(struct worker *w, struct client *c, int64_t now)
{
    ssize_t n = recv(c->fd, w->rbuf, READ_BUF, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (c->state != S_ACTIVE) {
        /* An idle keep-alive connection: the server closed it (fine), or sent
         * bytes nobody asked for (an error). Either way it is gone. */
        if (n > 0) {
            w->errors++;
            sload__bump64(&w->p_errors, 1);
        }
        close_conn(w, c);
        return;
    }
    if (n <= 0) {
        if (n == 0 && c->in_body && c->body_left < 0) {
            complete(w, c, now);
            return;
        }
        fail_request(w, c, now, 0);
        return;
    }
    const char *p = w->rbuf;
    size_t left = (size_t)n;
    while (left > 0) {
        if (!c->in_body) {
            /* Look for the end of the head: in this read alone when nothing is held. */
            const char *end = NULL;
            size_t used;
            if (c->hdr_len == 0 && (end = memmem(p, left, "\r\n\r\n", 4)) != NULL) {
                used = (size_t)(end + 4 - p);
                if (parse_head(c, p, used) != 0) {
                    fail_request(w, c, now, 0);
                    return;
                }
            } else {
                size_t take = left < HDR_CAP - c->hdr_len ? left : HDR_CAP - c->hdr_len;
                size_t from = c->hdr_len >= 3 ? c->hdr_len - 3 : 0;
                memcpy(c->hdr + c->hdr_len, p, take);
                c->hdr_len += (uint32_t)take;
                end = memmem(c->hdr + from, c->hdr_len - from, "\r\n\r\n", 4);
                if (!end) {
                    if (c->hdr_len == HDR_CAP) {
                        fail_request(w, c, now, 0);
                        return;
                    }
                    return; /* all of this read is head so far */
                }
                size_t head = (size_t)(end + 4 - c->hdr);
                used = head - (c->hdr_len - take);
                if (parse_head(c, c->hdr, head) != 0) {
                    fail_request(w, c, now, 0);
                    return;
                }
                c->hdr_len = 0;
            }
            p += used;
            left -= used;
            if (c->status / 100 == 1) { /* an interim response: the real one follows */
                c->in_body = 0;
                continue;
            }
        }
        if (c->body_left < 0) { /* until EOF */
            c->body_got += left;
            return;
        }
        if ((int64_t)left > c->body_left) { /* bytes beyond the response: we never pipeline */
            fail_request(w, c, now, 0);
            return;
        }
        c->body_left -= (int64_t)left;
        c->body_got += left;
        left = 0;
    }
    if (c->in_body && c->body_left == 0)
        complete(w, c, now);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct shared *sh = w->sh;
    const sload_http_config_t *cfg = &sh->cfg;
    int open_loop = cfg->rate > 0;
    /* Wake-ups on time: the default 50 us timer slack would add to every measured latency. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = sload_now_ns();
        if (now >= sh->drain_end)
            break;
        /* Timers: think time over (closed loop), or a back-off ended. */
        while (w->heap_n > 0 && w->heap[0]->wake <= now) {
            struct client *c = heap_pop(w);
            if (open_loop) {
                ring_push(w, c);
            } else if (c->wake >= sh->win_end) {
                c->state = S_FREE;
            } else {
                c->due = c->wake;
                start_request(w, c, now);
            }
        }
        /* Open loop: every request due by now goes to a ready connection. */
        int64_t next_due = INT64_MAX;
        if (open_loop) {
            for (;;) {
                int64_t due = due_of(w, w->next_k);
                if (due >= sh->win_end)
                    break;
                if (due > now) {
                    next_due = due;
                    break;
                }
                if (w->ring_n == 0)
                    break; /* it waits for a connection, its clock running */
                struct client *c = ring_pop(w);
                c->due = due;
                w->next_k++;
                start_request(w, c, now);
            }
        }
        int pending = open_loop && due_of(w, w->next_k) < sh->win_end;
        if (now >= sh->win_end && w->inflight == 0 && !pending)
            break;
        int64_t wake = now < sh->win_end ? sh->win_end : sh->drain_end; /* the end is checked on time */
        if (w->heap_n > 0)
            wake = min64(wake, w->heap[0]->wake);
        if (open_loop && w->ring_n > 0)
            wake = min64(wake, next_due);
        int64_t d = wake - now;
        if (d < 0)
            d = 0;
        struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
        int m = epoll_pwait2(w->ep, evs, 256, &ts, NULL);
        if (m < 0)
            continue;
        now = sload_now_ns();
        for (int i = 0; i < m; i++) {
            struct client *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue; /* closed by an earlier event of this batch */
            uint32_t e = evs[i].events;
            if (c->state == S_CONNECTING) {
                on_connected(w, c, e, now);
                continue;
            }
            if ((e & EPOLLOUT) && c->want_out && c->state == S_ACTIVE)
                push_request(w, c, now);
            if (c->fd >= 0 && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(w, c, now);
        }
    }
    return NULL;
}

void sload_http_result_free(sload_http_result_t *out)
{
    sload_hist_destroy(out->response_ok);
    sload_hist_destroy(out->response_other);
    sload_hist_destroy(out->connect);
    sload_hist_destroy(out->send_lag);
    sload_hist_destroy(out->unanswered);
    free(out->per_client);
    free(out->timeline);
    memset(out, 0, sizeof *out);
}

static void progress(struct worker *ws, uint32_t nw, double t, uint64_t *last_done, uint64_t *last_ok)
{
    uint64_t done = 0, ok = 0, errors = 0;
    uint32_t open = 0;
    for (uint32_t i = 0; i < nw; i++) {
        done += atomic_load_explicit(&ws[i].p_done, memory_order_relaxed);
        ok += atomic_load_explicit(&ws[i].p_ok, memory_order_relaxed);
        errors += atomic_load_explicit(&ws[i].p_errors, memory_order_relaxed);
        open += atomic_load_explicit(&ws[i].p_open, memory_order_relaxed);
    }
    fprintf(stderr, "seda-load: %5.1f s  %llu responses/s (%llu ok)  %llu errors  %u connections open\n", t,
            (unsigned long long)(done - *last_done), (unsigned long long)(ok - *last_ok),
            (unsigned long long)errors, open);
    *last_done = done;
    *last_ok = ok;
}

int sload_http_run(const sload_http_config_t *cfg_in, sload_http_result_t *out)
{
    memset(out, 0, sizeof *out);
    struct shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return -ENOMEM;
    sh->cfg = *cfg_in;
    sload_http_config_t *cfg = &sh->cfg;
    const char *path = cfg->path ? cfg->path : "/index.html";
    if (cfg->port == 0 || cfg->clients == 0 || cfg->duration_s <= 0 || cfg->warmup_s < 0 || cfg->think_ms < 0 ||
        cfg->rate < 0 || path[0] != '/' || strlen(path) >= sizeof sh->path || strpbrk(path, " \r\n")) {
        free(sh);
        return -EINVAL;
    }
    snprintf(sh->path, sizeof sh->path, "%s", path);
    cfg->path = sh->path;
    if (cfg->drain_s < 0)
        cfg->drain_s = 0;
    if (cfg->threads == 0)
        cfg->threads = 1;
    if (cfg->threads > cfg->clients)
        cfg->threads = cfg->clients;
    long limit = sload_raise_nofile();
    if (limit > 0 && (long)cfg->clients + 16 + 2 * (long)cfg->threads > limit) {
        free(sh);
        return -EMFILE;
    }
    for (int k = 0; k < 2; k++)
        sh->req_len[k] = (uint32_t)snprintf(sh->req[k], sizeof sh->req[k],
                                            "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: seda-load\r\n%s\r\n",
                                            sh->path, cfg->port, k ? "Connection: close\r\n" : "");

    uint32_t T = cfg->threads, N = cfg->clients;
    struct worker *ws = calloc(T, sizeof *ws);
    struct client *cl = calloc(N, sizeof *cl);
    char *hdrs = malloc((size_t)N * HDR_CAP);
    out->clients = N;
    out->per_client = calloc(N, sizeof *out->per_client);
    sh->timeline_len = (uint32_t)ceil(cfg->warmup_s + cfg->duration_s + cfg->drain_s) + 1;
    out->timeline_len = sh->timeline_len;
    out->timeline = calloc(sh->timeline_len, sizeof *out->timeline);
    out->response_ok = sload_hist_create();
    out->response_other = sload_hist_create();
    out->connect = sload_hist_create();
    out->send_lag = sload_hist_create();
    out->unanswered = sload_hist_create();
    int rc = 0;
    if (!ws || !cl || !hdrs || !out->per_client || !out->timeline || !out->response_ok || !out->response_other ||
        !out->connect || !out->send_lag || !out->unanswered)
        rc = -ENOMEM;
    for (uint32_t i = 0; ws && i < T; i++)
        ws[i].ep = -1;
    /* Everything starts a little from now, so that no thread starts late. */
    sh->t0 = sload_now_ns() + 20000000;
    sh->win_start = sh->t0 + (int64_t)(cfg->warmup_s * 1e9);
    sh->win_end = sh->win_start + (int64_t)(cfg->duration_s * 1e9);
    sh->drain_end = sh->win_end + (int64_t)(cfg->drain_s * 1e9);
    uint32_t per = N / T, extra = N % T, at = 0;
    for (uint32_t i = 0; rc == 0 && i < T; i++) {
        struct worker *w = &ws[i];
        w->sh = sh;
        w->index = i;
        w->nworkers = T;
        w->n = per + (i < extra);
        w->cl = cl + at;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->heap = calloc(w->n, sizeof *w->heap);
        w->ring = calloc(w->n, sizeof *w->ring);
        w->rbuf = malloc(READ_BUF);
        w->ok_h = sload_hist_create();
        w->other_h = sload_hist_create();
        w->conn_h = sload_hist_create();
        w->lag_h = sload_hist_create();
        w->timeline = calloc(sh->timeline_len, sizeof *w->timeline);
        w->per_client = out->per_client;
        if (w->ep < 0 || !w->heap || !w->ring || !w->rbuf || !w->ok_h || !w->other_h || !w->conn_h || !w->lag_h ||
            !w->timeline) {
            rc = -ENOMEM;
            break;
        }
        for (uint32_t j = 0; j < w->n; j++) {
            struct client *c = &w->cl[j];
            c->fd = -1;
            c->id = at + j;
            c->heap_idx = NO_HEAP;
            c->hdr = hdrs + (size_t)(at + j) * HDR_CAP;
            if (cfg->rate > 0) {
                ring_push(w, c);
            } else {
                /* Clients start spread over one think time, as people arriving. */
                int64_t offset = (int64_t)(cfg->think_ms * 1e6 * (double)(at + j) / (double)N);
                heap_push(w, c, sh->t0 + offset);
            }
        }
        if (cfg->rate > 0) {
            /* The global schedule is every 1/rate s; worker i takes every T-th slot from slot i. */
            w->interval_ns = 1e9 * (double)T / cfg->rate;
            w->first_due = sh->t0 + (int64_t)(1e9 * (double)i / cfg->rate);
        }
        at += w->n;
    }
    uint32_t started = 0;
    for (; rc == 0 && started < T; started++) {
        int e = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (e != 0)
            rc = -e;
    }
    if (rc != 0 && started > 0)
        started--; /* the loop counted the failed one */
    /* Progress, until every worker ended. */
    uint64_t last_done = 0, last_ok = 0;
    int64_t next_line = sh->t0 + 1000000000;
    for (uint32_t joined = 0; joined < started;) {
        joined = 0;
        for (uint32_t i = 0; i < started; i++)
            if (ws[i].tid == 0 || pthread_tryjoin_np(ws[i].tid, NULL) == 0) {
                ws[i].tid = 0;
                joined++;
            }
        int64_t now = sload_now_ns();
        if (cfg->progress && now >= next_line) {
            progress(ws, started, (double)(now - sh->t0) / 1e9, &last_done, &last_ok);
            next_line += 1000000000;
        }
        if (joined < started) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    int64_t end = sload_now_ns();
    for (uint32_t i = 0; ws && i < T; i++) {
        struct worker *w = &ws[i];
        out->completed += w->completed;
        out->ok += w->ok;
        out->rejected += w->rejected;
        out->other_status += w->other;
        out->errors += w->errors;
        out->connects += w->connects;
        out->connect_errors += w->connect_errors;
        out->body_bytes += w->body_bytes;
        if (rc == 0) {
            sload_hist_merge(out->response_ok, w->ok_h);
            sload_hist_merge(out->response_other, w->other_h);
            sload_hist_merge(out->connect, w->conn_h);
            sload_hist_merge(out->send_lag, w->lag_h);
            for (uint32_t s = 0; s < sh->timeline_len; s++)
                out->timeline[s] += w->timeline[s];
            /* What the drain left unanswered: requests in flight (due in the
             * warmup too: a request stuck since then waited through the whole
             * window), and open-loop requests that never found a connection. */
            for (uint32_t j = 0; j < w->n; j++) {
                struct client *c = &w->cl[j];
                if (c->state == S_ACTIVE || c->state == S_CONNECTING) {
                    out->outstanding++;
                    sload_hist_record(out->unanswered, end - c->due);
                    if (end - c->due > out->oldest_outstanding_ns)
                        out->oldest_outstanding_ns = end - c->due;
                }
                if (c->state == S_CONNECTING)
                    out->connect_errors++;
            }
            if (cfg->rate > 0)
                for (int64_t k = w->next_k; due_of(w, k) < sh->win_end; k++) {
                    out->outstanding++;
                    sload_hist_record(out->unanswered, end - due_of(w, k));
                    if (end - due_of(w, k) > out->oldest_outstanding_ns)
                        out->oldest_outstanding_ns = end - due_of(w, k);
                }
        }
        for (uint32_t j = 0; j < w->n; j++)
            if (w->cl && w->cl[j].fd >= 0)
                close(w->cl[j].fd);
        if (w->ep >= 0)
            close(w->ep);
        free(w->heap);
        free(w->ring);
        free(w->rbuf);
        free(w->timeline);
        sload_hist_destroy(w->ok_h);
        sload_hist_destroy(w->other_h);
        sload_hist_destroy(w->conn_h);
        sload_hist_destroy(w->lag_h);
    }
    out->window_s = cfg->duration_s;
    out->completions_per_s = (double)out->completed / cfg->duration_s;
    out->ok_per_s = (double)out->ok / cfg->duration_s;
    if (out->per_client)
        out->fairness = sload_jain(out->per_client, N);
    free(ws);
    free(cl);
    free(hdrs);
    free(sh);
    if (rc != 0)
        sload_http_result_free(out);
    return rc;
}
