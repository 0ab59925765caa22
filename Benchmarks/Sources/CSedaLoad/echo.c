/* The echo benchmark client (see sload_echo.h): epoll, level triggered. */
#define _GNU_SOURCE
#include "sload_echo.h"
#include "internal.h"
#include "sload_net.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { E_CONNECTING = 1, E_UP, E_DEAD };

struct econn {
    int fd;
    uint8_t state;
    uint8_t want_out;
    uint32_t id;
    uint32_t sent, got;  /* bytes of the current message written / read back */
    uint64_t seq;        /* messages sent on this connection */
    uint8_t tag[8];      /* the current message's first bytes: id and seq */
    int64_t t_send;
};

struct shared {
    const sload_echo_config_t *cfg;
    struct sload__gate gate;
    int64_t connect_deadline;
    const uint8_t *pattern; /* the message body: the same for every message after its tag */
};

struct worker {
    struct shared *sh;
    pthread_t tid;
    int ep;
    struct econn *conns;
    uint32_t n;
    sload_hist_t *lat;
    /* Written by this worker only; the main thread reads them for progress (relaxed). */
    _Atomic uint64_t done;
    _Atomic uint32_t up;
    /* Private until joined. */
    uint64_t messages, bytes;
    uint32_t connect_errors, io_errors, mismatches;
};

void sload_echo_defaults(sload_echo_config_t *cfg, uint16_t port, uint32_t connections, uint32_t size)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = port;
    cfg->connections = connections;
    cfg->size = size;
    cfg->threads = 1;
    cfg->connect_window = 256;
    cfg->warmup_s = 1;
    cfg->duration_s = 5;
    cfg->connect_limit_s = 30;
}

static void kill_conn(struct worker *w, struct econn *c)
{
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = E_DEAD;
}

static void set_out(struct worker *w, struct econn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)on;
}

static void push(struct worker *w, struct econn *c)
{
    uint32_t size = w->sh->cfg->size;
    uint32_t tlen = size < sizeof c->tag ? size : (uint32_t)sizeof c->tag;
    while (c->sent < size) {
        /* The tag, then the shared pattern: no copy of the message. */
        struct iovec iov[2];
        int n = 0;
        if (c->sent < tlen) {
            iov[n].iov_base = c->tag + c->sent;
            iov[n++].iov_len = tlen - c->sent;
        }
        uint32_t from = c->sent > tlen ? c->sent : tlen;
        if (from < size) {
            iov[n].iov_base = (void *)(w->sh->pattern + from);
            iov[n++].iov_len = size - from;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t k = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_out(w, c, 1);
                return;
            }
            w->io_errors++;
            kill_conn(w, c);
            return;
        }
        c->sent += (uint32_t)k;
    }
    set_out(w, c, 0);
}

static void start_message(struct worker *w, struct econn *c)
{
    uint64_t tag = ((uint64_t)c->id << 40) ^ c->seq++;
    memcpy(c->tag, &tag, sizeof tag);
    c->sent = c->got = 0;
    c->t_send = sload_now_ns();
    push(w, c);
}

/* Returns 1 when a message completed. */
static int on_readable(struct worker *w, struct econn *c, uint8_t *buf, size_t cap)
{
    uint32_t size = w->sh->cfg->size;
    ssize_t k = recv(c->fd, buf, cap, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (k <= 0 || c->got + (uint32_t)k > c->sent) { /* EOF, error, or bytes never sent */
        if (k > 0)
            w->mismatches++;
        else
            w->io_errors++;
        kill_conn(w, c);
        return 0;
    }
    /* Check the bytes against what was sent: the tag, then the pattern. */
    uint32_t at = c->got, len = (uint32_t)k, i = 0;
    uint32_t tlen = size < sizeof c->tag ? size : (uint32_t)sizeof c->tag;
    for (; i < len && at + i < tlen; i++)
        if (buf[i] != c->tag[at + i]) {
            w->mismatches++;
            kill_conn(w, c);
            return 0;
        }
    if (i < len && memcmp(buf + i, w->sh->pattern + at + i, len - i) != 0) {
        w->mismatches++;
        kill_conn(w, c);
        return 0;
    }
    c->got += len;
    return c->got == size;
}

static void connect_all(struct worker *w, uint32_t window)
{
    struct epoll_event evs[256];
    uint32_t next = 0, inflight = 0;
    while ((next < w->n || inflight) && sload_now_ns() < w->sh->connect_deadline) {
        while (inflight < window && next < w->n) {
            struct econn *c = &w->conns[next++];
            int fd = sload_connect_start(w->sh->cfg->port);
            if (fd < 0) {
                c->state = E_DEAD;
                w->connect_errors++;
                continue;
            }
            c->fd = fd;
            c->state = E_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;
        }
        int m = epoll_wait(w->ep, evs, 256, 100);
        for (int i = 0; i < m; i++) {
            struct econn *c = evs[i].data.ptr;
            if (c->state != E_CONNECTING)
                continue;
            inflight--;
            if (sload_connect_result(c->fd) != 0 || !(evs[i].events & EPOLLOUT)) {
                w->connect_errors++;
                kill_conn(w, c);
                continue;
            }
            c->state = E_UP;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
            sload__bump32(&w->up, 1);
        }
    }
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].state == E_CONNECTING) {
            w->connect_errors++;
            kill_conn(w, &w->conns[i]);
        }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const sload_echo_config_t *cfg = w->sh->cfg;
    uint32_t window = cfg->connect_window / cfg->threads;
    connect_all(w, window ? window : 1);
    if (sload__gate_wait(&w->sh->gate, w->sh->connect_deadline) != 0)
        return NULL;
    int64_t t0 = sload__gate_start(&w->sh->gate);
    int64_t measure_from = t0 + (int64_t)(cfg->warmup_s * 1e9);
    int64_t measure_to = measure_from + (int64_t)(cfg->duration_s * 1e9);
    int64_t drain_to = measure_to + 1000000000; /* answers still owed get 1 s */
    size_t cap = cfg->size < 65536 ? 65536 : cfg->size;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return NULL;
    uint32_t live = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].state == E_UP) {
            start_message(w, &w->conns[i]);
            live++;
        }
    struct epoll_event evs[256];
    uint32_t in_flight = live;
    for (;;) {
        int64_t now = sload_now_ns();
        if (now >= drain_to || (now >= measure_to && in_flight == 0))
            break;
        int m = epoll_wait(w->ep, evs, 256, 50);
        now = sload_now_ns();
        for (int i = 0; i < m; i++) {
            struct econn *c = evs[i].data.ptr;
            if (c->state != E_UP)
                continue;
            if ((evs[i].events & EPOLLOUT) && c->want_out) {
                push(w, c);
                if (c->state != E_UP) {
                    in_flight--;
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                int complete = on_readable(w, c, buf, cap);
                if (c->state != E_UP) {
                    in_flight--;
                    continue;
                }
                if (!complete)
                    continue;
                if (now >= measure_from && now < measure_to) {
                    sload_hist_record(w->lat, now - c->t_send);
                    w->messages++;
                    w->bytes += cfg->size;
                }
                sload__bump64(&w->done, 1);
                if (now < measure_to)
                    start_message(w, c);
                else
                    in_flight--;
                if (c->state != E_UP && now < measure_to)
                    in_flight--;
            }
        }
    }
    free(buf);
    return NULL;
}

void sload_echo_result_free(sload_echo_result_t *out)
{
    sload_hist_destroy(out->latency);
    out->latency = NULL;
}

int sload_echo_run(const sload_echo_config_t *cfg_in, sload_echo_result_t *out)
{
    sload_echo_config_t cfg = *cfg_in;
    memset(out, 0, sizeof *out);
    if (cfg.port == 0 || cfg.connections == 0 || cfg.size == 0 || cfg.duration_s <= 0 || cfg.warmup_s < 0)
        return -EINVAL;
    if (cfg.threads == 0)
        cfg.threads = 1;
    if (cfg.threads > cfg.connections)
        cfg.threads = cfg.connections;
    if (cfg.connect_window == 0)
        cfg.connect_window = 256;
    if (cfg.connect_limit_s <= 0)
        cfg.connect_limit_s = 30;
    long limit = sload_raise_nofile();
    if (limit > 0 && (long)cfg.connections + 16 + 2 * (long)cfg.threads > limit)
        return -EMFILE;
    struct shared sh = {.cfg = &cfg};
    uint8_t *pattern = malloc(cfg.size);
    struct worker *ws = calloc(cfg.threads, sizeof *ws);
    struct econn *conns = calloc(cfg.connections, sizeof *conns);
    out->latency = sload_hist_create();
    int rc = 0;
    if (!pattern || !ws || !conns || !out->latency)
        rc = -ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < cfg.size; i++)
        pattern[i] = (uint8_t)(i * 131 + 7);
    sh.pattern = pattern;
    for (uint32_t i = 0; rc == 0 && i < cfg.connections; i++) {
        conns[i].fd = -1;
        conns[i].id = i;
    }
    sh.connect_deadline = sload_now_ns() + (int64_t)(cfg.connect_limit_s * 1e9);
    uint32_t per = cfg.connections / cfg.threads, extra = cfg.connections % cfg.threads, at = 0;
    for (uint32_t i = 0; ws && i < cfg.threads; i++)
        ws[i].ep = -1;
    for (uint32_t i = 0; rc == 0 && i < cfg.threads; i++) {
        struct worker *w = &ws[i];
        w->sh = &sh;
        w->n = per + (i < extra);
        w->conns = conns + at;
        at += w->n;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->lat = sload_hist_create();
        if (w->ep < 0 || !w->lat)
            rc = -ENOMEM;
    }
    uint32_t started = 0;
    for (; rc == 0 && started < cfg.threads; started++) {
        int e = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (e != 0) {
            rc = -e;
            break;
        }
    }
    sload__gate_open(&sh.gate, started);
    /* Progress, until every worker ended. */
    int64_t begin = sload_now_ns(), next_line = begin + 1000000000;
    uint64_t last_done = 0;
    uint8_t *gone = calloc(started ? started : 1, 1);
    uint32_t joined = 0;
    while (joined < started) {
        for (uint32_t i = 0; i < started; i++)
            if (gone && !gone[i] && pthread_tryjoin_np(ws[i].tid, NULL) == 0) {
                gone[i] = 1;
                joined++;
            }
        if (!gone)
            break;
        int64_t now = sload_now_ns();
        if (cfg.progress && now >= next_line) {
            uint64_t done = 0;
            uint32_t up = 0;
            for (uint32_t i = 0; i < started; i++) {
                done += atomic_load_explicit(&ws[i].done, memory_order_relaxed);
                up += atomic_load_explicit(&ws[i].up, memory_order_relaxed);
            }
            fprintf(stderr, "echo: %5.1f s  up %u/%u  %llu messages/s\n", (double)(now - begin) / 1e9, up,
                    cfg.connections, (unsigned long long)(done - last_done));
            last_done = done;
            next_line += 1000000000;
        }
        if (joined < started) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    for (uint32_t i = 0; i < started; i++)
        if (!gone || !gone[i])
            pthread_join(ws[i].tid, NULL);
    free(gone);
    for (uint32_t i = 0; ws && i < cfg.threads; i++) {
        struct worker *w = &ws[i];
        out->connected += atomic_load_explicit(&w->up, memory_order_relaxed);
        out->connect_errors += w->connect_errors;
        out->io_errors += w->io_errors;
        out->mismatches += w->mismatches;
        out->messages += w->messages;
        out->bytes += w->bytes;
        if (w->lat && out->latency)
            sload_hist_merge(out->latency, w->lat);
        sload_hist_destroy(w->lat);
        if (w->ep >= 0)
            close(w->ep);
    }
    for (uint32_t i = 0; conns && i < cfg.connections; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    out->window_s = cfg.duration_s;
    out->messages_per_s = (double)out->messages / cfg.duration_s;
    out->mbit_s = (double)out->bytes * 8 / cfg.duration_s / 1e6;
    free(pattern);
    free(ws);
    free(conns);
    if (rc != 0)
        sload_echo_result_free(out);
    return rc;
}
