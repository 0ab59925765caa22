/* The aSocket benchmark client (see sload_asocket.h): epoll, level triggered. */
#define _GNU_SOURCE
#include "sload_asocket.h"
#include "sload_net.h"
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { C_IDLE, C_CONNECTING, C_UP, C_DONE, C_FAILED };

struct conn {
    int fd;
    uint8_t state;
    uint8_t want_out;     /* EPOLLOUT registered: a packet's send was short */
    uint32_t sent;        /* bytes of the current packet sent */
    uint32_t ack_bytes;   /* bytes of the current ack received */
    uint32_t packets;     /* packets acknowledged */
};

struct shared {
    const sload_asocket_config_t *cfg;
    int64_t deadline;
    struct sload__gate gate; /* every connection up before the first packet */
};

struct worker {
    struct shared *sh;
    pthread_t tid;
    int ep;
    struct conn *conns;
    uint32_t n;
    char *packet;
    /* Progress counters: written by this worker only, read by the main thread
     * for the progress line (relaxed both sides: no other data depends on them). */
    _Atomic uint64_t acked;
    _Atomic uint32_t up;
    _Atomic uint32_t finished;
    /* Private until the worker is joined. */
    uint32_t connect_errors, io_errors, protocol_errors;
    int timed_out, cut;
    int64_t last_ack;
};

void sload_asocket_defaults(sload_asocket_config_t *cfg, uint16_t port, uint32_t connections)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = port;
    cfg->connections = connections;
    cfg->packets = 1000;
    cfg->packet_size = 8192;
    cfg->ack_size = 32;
    cfg->threads = 1;
    cfg->connect_window = 256;
    cfg->time_limit_s = 60;
}

static void drop(struct worker *w, struct conn *c, uint8_t state)
{
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = state;
}

static void set_out(struct worker *w, struct conn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)on;
}

/* Sends what is left of the current packet; 0, or -1 when the connection died. */
static int push(struct worker *w, struct conn *c)
{
    uint32_t size = w->sh->cfg->packet_size;
    while (c->sent < size) {
        ssize_t k = send(c->fd, w->packet + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_out(w, c, 1);
                return 0;
            }
            w->io_errors++;
            drop(w, c, C_FAILED);
            return -1;
        }
        c->sent += (uint32_t)k;
    }
    set_out(w, c, 0);
    return 0;
}

static void on_readable(struct worker *w, struct conn *c)
{
    const sload_asocket_config_t *cfg = w->sh->cfg;
    char buf[512];
    ssize_t k = recv(c->fd, buf, sizeof buf, 0);
    if (k < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        w->io_errors++;
        drop(w, c, C_FAILED);
        return;
    }
    if (k == 0) {
        w->io_errors++;
        drop(w, c, C_FAILED);
        return;
    }
    /* Stop and wait: one ack may be outstanding, and only once its packet is out. */
    if (c->sent < cfg->packet_size || c->ack_bytes + (uint32_t)k > cfg->ack_size) {
        w->protocol_errors++;
        drop(w, c, C_FAILED);
        return;
    }
    c->ack_bytes += (uint32_t)k;
    if (c->ack_bytes < cfg->ack_size)
        return;
    c->ack_bytes = 0;
    c->packets++;
    sload__bump64(&w->acked, 1);
    if (c->packets == cfg->packets) {
        w->last_ack = sload_now_ns();
        drop(w, c, C_DONE);
        sload__bump32(&w->finished, 1);
        return;
    }
    c->sent = 0;
    push(w, c);
}

static void connect_phase(struct worker *w, uint32_t window)
{
    struct epoll_event evs[256];
    uint32_t next = 0, inflight = 0;
    while ((next < w->n || inflight > 0) && sload_now_ns() < w->sh->deadline) {
        while (inflight < window && next < w->n) {
            struct conn *c = &w->conns[next++];
            int fd = sload_connect_start(w->sh->cfg->port);
            if (fd < 0) {
                c->state = C_FAILED;
                w->connect_errors++;
                continue;
            }
            c->fd = fd;
            c->state = C_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;
        }
        int m = epoll_wait(w->ep, evs, 256, 100);
        for (int i = 0; i < m; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state != C_CONNECTING)
                continue;
            inflight--;
            if (sload_connect_result(c->fd) != 0 || !(evs[i].events & EPOLLOUT)) {
                w->connect_errors++;
                drop(w, c, C_FAILED);
                continue;
            }
            c->state = C_UP;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
            sload__bump32(&w->up, 1);
        }
    }
    /* Connects still pending at the deadline count as failures. */
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].state == C_CONNECTING) {
            w->connect_errors++;
            drop(w, &w->conns[i], C_FAILED);
        }
}

static void transfer_phase(struct worker *w)
{
    struct epoll_event evs[256];
    uint32_t up = atomic_load_explicit(&w->up, memory_order_relaxed);
    uint32_t failed_before = w->io_errors + w->protocol_errors;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].state == C_UP)
            push(w, &w->conns[i]);
    for (;;) {
        uint32_t ended = atomic_load_explicit(&w->finished, memory_order_relaxed) +
                         (w->io_errors + w->protocol_errors - failed_before);
        if (ended >= up)
            return;
        int64_t now = sload_now_ns();
        if (now >= w->sh->deadline) {
            w->timed_out = 1;
            return;
        }
        if (w->sh->cfg->duration_s > 0 &&
            now >= sload__gate_start(&w->sh->gate) + (int64_t)(w->sh->cfg->duration_s * 1e9)) {
            w->cut = 1;
            return;
        }
        int m = epoll_wait(w->ep, evs, 256, w->sh->cfg->duration_s > 0 ? 10 : 100);
        for (int i = 0; i < m; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state != C_UP)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(w, c);
            if (c->state == C_UP && (evs[i].events & EPOLLOUT) && c->want_out)
                push(w, c);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const sload_asocket_config_t *cfg = w->sh->cfg;
    uint32_t window = cfg->connect_window / cfg->threads;
    connect_phase(w, window ? window : 1);
    /* Every connection of every worker is up (or failed) before the first
     * packet: the transfer is measured alone, not mixed with connects. */
    if (sload__gate_wait(&w->sh->gate, w->sh->deadline) != 0)
        w->timed_out = 1;
    transfer_phase(w);
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].fd >= 0)
            drop(w, &w->conns[i], C_FAILED);
    return NULL;
}

static void progress_line(struct worker *ws, uint32_t nw, const sload_asocket_config_t *cfg, double t,
                          uint64_t *last_acked, double *last_t)
{
    uint64_t acked = 0;
    uint32_t up = 0, finished = 0;
    for (uint32_t i = 0; i < nw; i++) {
        acked += atomic_load_explicit(&ws[i].acked, memory_order_relaxed);
        up += atomic_load_explicit(&ws[i].up, memory_order_relaxed);
        finished += atomic_load_explicit(&ws[i].finished, memory_order_relaxed);
    }
    double dt = t - *last_t;
    double mbit = dt > 0 ? (double)(acked - *last_acked) * cfg->packet_size * 8 / dt / 1e6 : 0;
    fprintf(stderr, "asocket: %5.1f s  up %u/%u  finished %u  acked %llu/%llu  %.1f Mbit/s\n", t, up,
            cfg->connections, finished, (unsigned long long)acked,
            (unsigned long long)cfg->connections * cfg->packets, mbit);
    *last_acked = acked;
    *last_t = t;
}

int sload_asocket_run(const sload_asocket_config_t *cfg_in, sload_asocket_result_t *out)
{
    sload_asocket_config_t cfg = *cfg_in;
    if (cfg.connections == 0 || cfg.packets == 0 || cfg.packet_size == 0 || cfg.ack_size == 0 || cfg.port == 0)
        return -EINVAL;
    if (cfg.threads == 0)
        cfg.threads = 1;
    if (cfg.threads > cfg.connections)
        cfg.threads = cfg.connections;
    if (cfg.connect_window == 0)
        cfg.connect_window = 256;
    if (cfg.time_limit_s <= 0)
        cfg.time_limit_s = 60;
    long limit = sload_raise_nofile();
    if (limit > 0 && (long)cfg.connections + 16 + 2 * (long)cfg.threads > limit)
        return -EMFILE;

    memset(out, 0, sizeof *out);
    struct shared sh = {.cfg = &cfg};
    struct worker *ws = calloc(cfg.threads, sizeof *ws);
    struct conn *conns = calloc(cfg.connections, sizeof *conns);
    if (!ws || !conns) {
        free(ws);
        free(conns);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < cfg.connections; i++)
        conns[i].fd = -1;
    int64_t start = sload_now_ns();
    sh.deadline = start + (int64_t)(cfg.time_limit_s * 1e9);
    uint32_t per = cfg.connections / cfg.threads, extra = cfg.connections % cfg.threads, at = 0;
    int rc = 0;
    for (uint32_t i = 0; i < cfg.threads; i++)
        ws[i].ep = -1;
    for (uint32_t i = 0; i < cfg.threads && rc == 0; i++) {
        struct worker *w = &ws[i];
        w->sh = &sh;
        w->n = per + (i < extra);
        w->conns = conns + at;
        at += w->n;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->packet = malloc(cfg.packet_size);
        if (w->ep < 0 || !w->packet) {
            rc = w->ep < 0 ? -errno : -ENOMEM;
            break;
        }
        for (uint32_t b = 0; b < cfg.packet_size; b++)
            w->packet[b] = (char)('a' + b % 26);
    }
    uint32_t started = 0;
    for (; rc == 0 && started < cfg.threads; started++) {
        int e = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (e != 0)
            rc = -e;
    }
    if (rc != 0)
        started = started ? started - 1 : 0;
    /* Workers already started run with what they have; the count releases them. */
    sload__gate_open(&sh.gate, started);
    uint64_t last_acked = 0;
    double last_t = 0;
    int64_t next_line = start + 1000000000;
    uint32_t joined = 0;
    uint8_t *gone = calloc(started ? started : 1, 1);
    while (joined < started && gone) {
        for (uint32_t i = 0; i < started; i++)
            if (!gone[i] && pthread_tryjoin_np(ws[i].tid, NULL) == 0) {
                gone[i] = 1;
                joined++;
            }
        int64_t now = sload_now_ns();
        if (cfg.progress && now >= next_line) {
            progress_line(ws, started, &cfg, (double)(now - start) / 1e9, &last_acked, &last_t);
            next_line += 1000000000;
        }
        struct timespec ts = {0, 10000000};
        if (joined < started)
            nanosleep(&ts, NULL);
    }
    for (uint32_t i = 0; i < started; i++)
        if (!gone || !gone[i])
            pthread_join(ws[i].tid, NULL);
    free(gone);
    int64_t tstart = sload__gate_start(&sh.gate);
    int64_t tend = 0;
    for (uint32_t i = 0; i < cfg.threads; i++) {
        struct worker *w = &ws[i];
        out->connected += atomic_load_explicit(&w->up, memory_order_relaxed);
        out->finished += atomic_load_explicit(&w->finished, memory_order_relaxed);
        out->packets_acked += atomic_load_explicit(&w->acked, memory_order_relaxed);
        out->connect_errors += w->connect_errors;
        out->io_errors += w->io_errors;
        out->protocol_errors += w->protocol_errors;
        out->timed_out |= w->timed_out;
        out->cut |= w->cut;
        if (w->last_ack > tend)
            tend = w->last_ack;
        if (w->ep >= 0)
            close(w->ep);
        free(w->packet);
    }
    if (out->timed_out)
        tend = sh.deadline;
    else if (out->cut)
        tend = tstart + (int64_t)(cfg.duration_s * 1e9);
    out->bytes_acked = out->packets_acked * cfg.packet_size;
    out->connect_s = tstart ? (double)(tstart - start) / 1e9 : 0;
    out->transfer_s = tstart && tend > tstart ? (double)(tend - tstart) / 1e9 : 0;
    out->mbit_s = out->transfer_s > 0 ? (double)out->bytes_acked * 8 / out->transfer_s / 1e6 : 0;
    free(ws);
    free(conns);
    return rc;
}
