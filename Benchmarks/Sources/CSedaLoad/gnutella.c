/* The Gnutella load generator (see sload_gnutella.h): epoll, level triggered. */
#define _GNU_SOURCE
#include "sload_gnutella.h"
#include "internal.h"
#include "sload_net.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    HDR = 23,
    MAX_PAYLOAD = 65536,
    OUT_CAP = 1 << 20, /* bytes a connection may hold while the router does not read */
    RING = 32,         /* requests remembered per connection, to answer */
    SERVENTS = 64,     /* query hits remembered per thread, for pushes */
    MAGIC = 0x5e,      /* ID byte 14 of every descriptor this generator makes */
    SEC_BUCKETS = 48,  /* per-second latency buckets: sqrt(2) steps from 1 us */
};

static const uint8_t wire_type[SLOAD_GNU_TYPES] = {0x00, 0x01, 0x40, 0x80, 0x81};
static const char *const type_names[SLOAD_GNU_TYPES] = {"ping", "pong", "push", "query", "queryhit"};
static const char connect_req[] = "GNUTELLA CONNECT/0.4\n\n";
static const char connect_ok[] = "GNUTELLA OK\n\n";
#define TRACE_BIT (UINT64_C(1) << 63)

const char *sload_gnu_type_name(int type)
{
    return type >= 0 && type < SLOAD_GNU_TYPES ? type_names[type] : NULL;
}

static int type_index(uint8_t wire)
{
    for (int i = 0; i < SLOAD_GNU_TYPES; i++)
        if (wire_type[i] == wire)
            return i;
    return -1;
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* the wire is little-endian, and so is this machine (x86-64, arm64 Linux) */
}
static void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

enum { C_CONNECTING = 1, C_HANDSHAKE, C_UP, C_DEAD };

struct gconn {
    int fd;
    uint8_t state, clogged, want_out, hs_got;
    uint8_t parked;                  /* clogged and out of the epoll set (its peer hung up) */
    uint32_t index;                  /* across all threads */
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *out;
    uint32_t out_off, out_len, out_cap;
    uint8_t pings[RING][16], queries[RING][16]; /* received request IDs, newest last */
    uint8_t n_pings, n_queries;
};

struct gevent {                      /* one trace line */
    int64_t at_ns;
    uint32_t conn;
    uint8_t type, ttl, hops, has_payload;
    int64_t ref;
    uint8_t *payload;
    uint32_t plen;
};

struct record_line {
    uint64_t index;
    char *text;
};

struct gshared {
    const sload_gnu_config_t *cfg;
    struct sload__gate gate;
    int64_t connect_deadline;
    double mix_cum[SLOAD_GNU_TYPES];
    _Atomic uint64_t next_index;    /* descriptor indexes (synthetic mode); relaxed fetch_add, a counter only */
    struct gevent *events;
    uint64_t n_events;
    _Atomic int64_t *sent_at;       /* trace mode: release store by the sender, acquire load by receivers */
    uint32_t seconds;               /* timeline slots */
};

struct gworker {
    struct gshared *sh;
    pthread_t tid;
    int ep;
    uint32_t windex;
    struct gconn *conns;
    uint32_t n, rr;
    uint64_t rng;
    sload_hist_t *lat[SLOAD_GNU_TYPES], *lat_all;
    uint32_t *sec_buckets;          /* seconds x SEC_BUCKETS, private until joined */
    uint64_t *trace_mine;           /* indexes of my trace events, in order */
    uint64_t n_mine, next_mine;
    struct { uint8_t id[16]; uint32_t conn; uint64_t index; } servents[SERVENTS];
    uint32_t n_servents, servent_at;
    struct record_line *lines;
    uint64_t n_lines, cap_lines;
    int64_t t0, from, to;
    /* Written by this worker only; the main thread reads them each second (relaxed). */
    _Atomic uint64_t sent_total, recv_total, recv_type[SLOAD_GNU_TYPES];
    _Atomic uint32_t up, open;
    /* Private until joined. */
    uint64_t sent[SLOAD_GNU_TYPES], received[SLOAD_GNU_TYPES];
    uint64_t unanswerable, backlog_drops, foreign;
    uint32_t connect_errors, handshake_errors, closed_by_server, clogged_closed, protocol_errors;
};

void sload_gnu_defaults(sload_gnu_config_t *cfg, uint16_t port, uint32_t connections, double rate)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = port;
    cfg->connections = connections;
    cfg->threads = 1;
    cfg->rate = rate;
    cfg->mix[SLOAD_GNU_PING] = 25;
    cfg->mix[SLOAD_GNU_PONG] = 35;
    cfg->mix[SLOAD_GNU_QUERY] = 15;
    cfg->mix[SLOAD_GNU_QUERYHIT] = 20;
    cfg->mix[SLOAD_GNU_PUSH] = 5;
    cfg->ttl = 7;
    cfg->burst = 1;
    cfg->burst_on_ms = 100;
    cfg->query_bytes = 12;
    cfg->connect_window = 256;
    cfg->warmup_s = 1;
    cfg->duration_s = 5;
    cfg->drain_s = 1;
    cfg->connect_limit_s = 30;
    cfg->trace_speed = 1;
    cfg->seed = 1;
}

uint64_t sload_rss_kb(int32_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: quality enough for a traffic mix, and reproducible. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static double rand01(uint64_t *s) { return (double)(next_rand(s) >> 11) / 9007199254740992.0; }

/* MARK: connections */

static void kill_conn(struct gworker *w, struct gconn *c)
{
    if (c->state == C_UP)
        sload__bump32(&w->open, (uint32_t)-1);
    if (!c->parked)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = C_DEAD;
}

static void set_events(struct gworker *w, struct gconn *c, int out)
{
    uint32_t ev = (c->clogged && c->state == C_UP ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0);
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->want_out = (uint8_t)out;
}

static void flush_out(struct gworker *w, struct gconn *c)
{
    while (c->out_len > c->out_off) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!c->want_out)
                    set_events(w, c, 1);
                return;
            }
            w->closed_by_server++;
            kill_conn(w, c);
            return;
        }
        c->out_off += (uint32_t)k;
    }
    c->out_off = c->out_len = 0;
    if (c->want_out)
        set_events(w, c, 0);
}

/* Writes or queues `len` bytes; returns 0, or -1 when the backlog is full (nothing written). */
static int conn_write(struct gworker *w, struct gconn *c, const uint8_t *buf, uint32_t len)
{
    uint32_t at = 0;
    if (c->out_len == c->out_off) {
        while (at < len) {
            ssize_t k = send(c->fd, buf + at, len - at, MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    break;
                w->closed_by_server++;
                kill_conn(w, c);
                return 0;
            }
            at += (uint32_t)k;
        }
        if (at == len)
            return 0;
    }
    uint32_t rest = len - at;
    if (c->out_off > 0 && c->out_len + rest > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + rest > c->out_cap) {
        if (c->out_len + rest > OUT_CAP) {
            if (at == 0)
                return -1;
            rest = OUT_CAP - c->out_len; /* a partial descriptor must still be finished */
        }
        uint32_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + rest)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
            return -1;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf + at, rest);
    c->out_len += rest;
    if (!c->want_out)
        set_events(w, c, 1);
    return 0;
}

/* MARK: building descriptors */

static void header(uint8_t *h, const uint8_t id[16], int type, uint8_t ttl, uint8_t hops, uint32_t plen)
{
    memcpy(h, id, 16);
    h[16] = wire_type[type];
    h[17] = ttl;
    h[18] = hops;
    st32(h + 19, plen);
}

/* A fresh ID: the stamp, the index, the connection, the mark. */
static void make_id(uint8_t id[16], uint64_t stamp, uint64_t index, uint32_t conn)
{
    st64(id, stamp);
    st32(id + 8, (uint32_t)index);
    id[12] = (uint8_t)conn;
    id[13] = (uint8_t)(conn >> 8);
    id[14] = MAGIC;
    id[15] = 0;
}

static void make_servent(uint8_t s[16], uint64_t index)
{
    st64(s, index);
    memcpy(s + 8, "SEDA", 4);
    s[12] = s[13] = 0;
    s[14] = MAGIC;
    s[15] = 0;
}

/* Payload of a made-up descriptor, with `stamp` where the type carries it. */
static uint32_t make_payload(uint8_t *p, int type, uint64_t stamp, const uint8_t servent[16], uint32_t query_bytes)
{
    switch (type) {
    case SLOAD_GNU_PING:
        return 0;
    case SLOAD_GNU_PONG:
        p[0] = 0xca; p[1] = 0x18;              /* port 6346, little-endian */
        p[2] = 127; p[3] = 0; p[4] = 0; p[5] = 1; /* 127.0.0.1 */
        st64(p + 6, stamp);                    /* files and kilobytes shared: the stamp */
        return 14;
    case SLOAD_GNU_QUERY:
        p[0] = p[1] = 0;
        for (uint32_t i = 0; i < query_bytes; i++)
            p[2 + i] = (uint8_t)('a' + (stamp + i) % 26);
        p[2 + query_bytes] = 0;
        return 3 + query_bytes;
    case SLOAD_GNU_QUERYHIT:
        p[0] = 1;
        p[1] = 0xca; p[2] = 0x18;
        p[3] = 127; p[4] = 0; p[5] = 0; p[6] = 1;
        st32(p + 7, 1000);
        st64(p + 11, stamp);                   /* the result's index and size: the stamp */
        memcpy(p + 19, "seda.txt\0\0", 10);
        memcpy(p + 29, servent, 16);
        return 45;
    case SLOAD_GNU_PUSH:
        memcpy(p, servent, 16);
        st32(p + 16, 0);
        p[20] = 127; p[21] = 0; p[22] = 0; p[23] = 1;
        p[24] = 0xca; p[25] = 0x18;
        return 26;
    }
    return 0;
}

/* The stamp a received descriptor carries, or 0 if it has none. */
static uint64_t stamp_of(const uint8_t *d, uint32_t plen, int type)
{
    if (d[14] != MAGIC)
        return 0;
    const uint8_t *p = d + HDR;
    switch (type) {
    case SLOAD_GNU_PONG:
        return plen >= 14 ? ld64(p + 6) : 0;
    case SLOAD_GNU_QUERYHIT:
        return plen >= 19 ? ld64(p + 11) : 0;
    default:
        return ld64(d);
    }
}

static void remember(uint8_t ring[RING][16], uint8_t *n, const uint8_t id[16])
{
    if (*n == RING) {
        memmove(ring[0], ring[1], (RING - 1) * 16);
        (*n)--;
    }
    memcpy(ring[(*n)++], id, 16);
}

static void record(struct gworker *w, uint64_t index, int64_t now, uint32_t conn, int type, uint8_t ttl,
                   int64_t ref)
{
    const sload_gnu_config_t *cfg = w->sh->cfg;
    if (!cfg->record_path)
        return;
    if (w->n_lines == w->cap_lines) {
        uint64_t cap = w->cap_lines ? 2 * w->cap_lines : 1024;
        struct record_line *p = realloc(w->lines, cap * sizeof *p);
        if (!p)
            return;
        w->lines = p;
        w->cap_lines = cap;
    }
    char buf[128], refs[24] = "-";
    if (ref >= 0)
        snprintf(refs, sizeof refs, "%lld", (long long)ref);
    snprintf(buf, sizeof buf, "%lld %u %s %u 0 %s\n", (long long)((now - w->t0) / 1000), conn, type_names[type],
             ttl, refs);
    char *text = strdup(buf);
    if (!text)
        return;
    w->lines[w->n_lines++] = (struct record_line){index, text};
}

/* MARK: receiving */

static void on_descriptor(struct gworker *w, struct gconn *c, const uint8_t *d, uint32_t plen, int64_t now)
{
    int type = type_index(d[16]);
    if (type < 0) {
        w->protocol_errors++;
        return;
    }
    sload__bump64(&w->recv_total, 1);
    sload__bump64(&w->recv_type[type], 1);
    if (type == SLOAD_GNU_PING)
        remember(c->pings, &c->n_pings, d);
    else if (type == SLOAD_GNU_QUERY)
        remember(c->queries, &c->n_queries, d);
    uint64_t stamp = stamp_of(d, plen, type);
    if (!stamp) {
        w->foreign++;
        return;
    }
    int64_t sent;
    if (stamp & TRACE_BIT) {
        uint64_t i = stamp & ~TRACE_BIT;
        sent = i < w->sh->n_events ? atomic_load_explicit(&w->sh->sent_at[i], memory_order_acquire) : 0;
        if (sent == 0)
            return;
    } else {
        sent = (int64_t)stamp;
    }
    int64_t lat = now - sent;
    /* Counted by when it was offered, so that "delivered" answers "offered" (late copies arrive in the drain). */
    if (sent >= w->from && sent < w->to) {
        w->received[type]++;
        sload_hist_record(w->lat[type], lat);
        sload_hist_record(w->lat_all, lat);
    }
    int64_t sec = (now - w->t0) / 1000000000;
    if (sec >= 0 && (uint64_t)sec < w->sh->seconds) {
        int b = lat <= 1000 ? 0 : (int)(2 * log2((double)lat / 1000.0)) + 1;
        if (b >= SEC_BUCKETS)
            b = SEC_BUCKETS - 1;
        w->sec_buckets[sec * SEC_BUCKETS + b]++;
    }
}

static void on_readable(struct gworker *w, struct gconn *c, int64_t now)
{
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            uint32_t cap = c->in_cap ? 2 * c->in_cap : 8192;
            if (cap > HDR + MAX_PAYLOAD + 8192)
                cap = HDR + MAX_PAYLOAD + 8192;
            if (cap <= c->in_cap) {
                w->protocol_errors++;
                kill_conn(w, c);
                return;
            }
            uint8_t *p = realloc(c->in, cap);
            if (!p) {
                kill_conn(w, c);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t k = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN)
            return;
        if (k <= 0) {
            if (c->state == C_HANDSHAKE)
                w->handshake_errors++;
            else
                w->closed_by_server++;
            kill_conn(w, c);
            return;
        }
        c->in_len += (uint32_t)k;
        uint32_t at = 0;
        if (c->state == C_HANDSHAKE) {
            uint32_t need = (uint32_t)sizeof connect_ok - 1;
            while (at < c->in_len && c->hs_got < need) {
                if (c->in[at] != (uint8_t)connect_ok[c->hs_got]) {
                    w->handshake_errors++;
                    kill_conn(w, c);
                    return;
                }
                at++;
                c->hs_got++;
            }
            if (c->hs_got < need) {
                c->in_len = 0;
                continue;
            }
            c->state = C_UP;
            sload__bump32(&w->up, 1);
            sload__bump32(&w->open, 1);
            if (c->clogged) {
                set_events(w, c, c->want_out); /* stop reading, for good */
                c->in_len = 0;
                return;
            }
        }
        while (c->in_len - at >= HDR) {
            uint32_t plen = ld32(c->in + at + 19);
            if (plen > MAX_PAYLOAD || type_index(c->in[at + 16]) < 0) {
                w->protocol_errors++;
                kill_conn(w, c);
                return;
            }
            if (c->in_len - at < HDR + plen)
                break;
            on_descriptor(w, c, c->in + at, plen, now);
            at += HDR + plen;
        }
        memmove(c->in, c->in + at, c->in_len - at);
        c->in_len -= at;
    }
}

/* MARK: sending */

static struct gconn *next_sender(struct gworker *w)
{
    for (uint32_t k = 0; k < w->n; k++) {
        struct gconn *c = &w->conns[w->rr++ % w->n];
        if (c->state == C_UP && !c->clogged)
            return c;
    }
    return NULL;
}

/* A connection of this thread holding a request of `type` to answer, from `c` on. */
static struct gconn *with_request(struct gworker *w, struct gconn *c, int type)
{
    uint32_t start = (uint32_t)(c - w->conns);
    for (uint32_t k = 0; k < w->n && k < 16; k++) {
        struct gconn *x = &w->conns[(start + k) % w->n];
        if (x->state != C_UP || x->clogged)
            continue;
        if ((type == SLOAD_GNU_PING && x->n_pings) || (type == SLOAD_GNU_QUERY && x->n_queries))
            return x;
    }
    return NULL;
}

static void send_built(struct gworker *w, struct gconn *c, int type, const uint8_t *buf, uint32_t len, int64_t now)
{
    if (conn_write(w, c, buf, len) != 0) {
        w->backlog_drops++;
        return;
    }
    sload__bump64(&w->sent_total, 1);
    if (now >= w->from && now < w->to)
        w->sent[type]++;
}

static void send_synthetic(struct gworker *w, int64_t now)
{
    const sload_gnu_config_t *cfg = w->sh->cfg;
    struct gconn *c = next_sender(w);
    if (!c)
        return;
    double r = rand01(&w->rng);
    int type = SLOAD_GNU_TYPES - 1;
    for (int i = 0; i < SLOAD_GNU_TYPES; i++)
        if (r < w->sh->mix_cum[i]) {
            type = i;
            break;
        }
    uint8_t id[16], servent[16] = {0};
    uint64_t index = atomic_fetch_add_explicit(&w->sh->next_index, 1, memory_order_relaxed);
    int64_t ref = -1;
    uint8_t ttl = cfg->ttl;
    if (type == SLOAD_GNU_PONG || type == SLOAD_GNU_QUERYHIT) {
        int want = type == SLOAD_GNU_PONG ? SLOAD_GNU_PING : SLOAD_GNU_QUERY;
        struct gconn *x = with_request(w, c, want);
        if (!x) {
            w->unanswerable++;
            type = want;
        } else {
            c = x;
            uint8_t *n = want == SLOAD_GNU_PING ? &c->n_pings : &c->n_queries;
            memcpy(id, want == SLOAD_GNU_PING ? c->pings[*n - 1] : c->queries[*n - 1], 16);
            (*n)--;
            ref = ld32(id + 8);
            ttl = 7;
        }
    }
    if (type == SLOAD_GNU_PUSH) {
        if (w->n_servents == 0) {
            w->unanswerable++;
            type = SLOAD_GNU_QUERY;
        } else {
            uint32_t pick = (uint32_t)(next_rand(&w->rng) % w->n_servents);
            memcpy(servent, w->servents[pick].id, 16);
            ref = (int64_t)w->servents[pick].index;
            if (w->servents[pick].conn == (uint32_t)(c - w->conns)) {
                c = next_sender(w); /* not to the hit's own sender */
                if (!c || c == &w->conns[w->servents[pick].conn]) {
                    w->unanswerable++;
                    return;
                }
            }
            ttl = 7;
        }
    }
    if (type == SLOAD_GNU_PING || type == SLOAD_GNU_QUERY || type == SLOAD_GNU_PUSH)
        make_id(id, (uint64_t)now, index, c->index);
    if (type == SLOAD_GNU_QUERYHIT) {
        make_servent(servent, index);
        uint32_t slot = w->servent_at++ % SERVENTS;
        memcpy(w->servents[slot].id, servent, 16);
        w->servents[slot].conn = (uint32_t)(c - w->conns);
        w->servents[slot].index = index;
        if (w->n_servents < SERVENTS)
            w->n_servents++;
    }
    uint8_t buf[HDR + 64 + 4096];
    uint32_t plen = make_payload(buf + HDR, type, (uint64_t)now, servent, cfg->query_bytes);
    header(buf, id, type, ttl, 0, plen);
    send_built(w, c, type, buf, HDR + plen, now);
    record(w, index, now, c->index, type, ttl, ref);
}

static void trace_id(struct gshared *sh, uint8_t id[16], uint64_t i)
{
    make_id(id, i | TRACE_BIT, i, sh->events[i].conn);
}

static void send_trace(struct gworker *w, uint64_t i, int64_t now)
{
    struct gshared *sh = w->sh;
    const struct gevent *e = &sh->events[i];
    struct gconn *c = &w->conns[(e->conn / w->sh->cfg->threads) % w->n];
    if (c->state != C_UP || c->clogged)
        return;
    uint8_t id[16], servent[16];
    int type = e->type;
    if ((type == SLOAD_GNU_PONG || type == SLOAD_GNU_QUERYHIT) && e->ref >= 0)
        trace_id(sh, id, (uint64_t)e->ref);
    else
        trace_id(sh, id, i);
    make_servent(servent, type == SLOAD_GNU_PUSH && e->ref >= 0 ? (uint64_t)e->ref : i);
    uint32_t cap = HDR + (e->has_payload ? e->plen : 64 + sh->cfg->query_bytes);
    uint8_t stackbuf[512], *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf)
        return;
    uint32_t plen;
    if (e->has_payload) {
        memcpy(buf + HDR, e->payload, e->plen);
        plen = e->plen;
    } else {
        plen = make_payload(buf + HDR, type, i | TRACE_BIT, servent, sh->cfg->query_bytes);
    }
    header(buf, id, type, e->ttl, e->hops, plen);
    atomic_store_explicit(&sh->sent_at[i], now, memory_order_release);
    send_built(w, c, type, buf, HDR + plen, now);
    if (buf != stackbuf)
        free(buf);
}

/* MARK: the worker */

/*
 * A non-blocking connect to 127.0.0.1:port. A clogged connection gets a
 * small receive buffer first, so that what the router sends it piles up in
 * the router (where its outgoing limit applies), not in this kernel.
 */
static int connect_start(uint16_t port, int clogged)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, small = 4096;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (clogged)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void connect_all(struct gworker *w, uint32_t window)
{
    struct epoll_event evs[256];
    uint32_t next = 0, inflight = 0, pending = 0;
    int64_t deadline = w->sh->connect_deadline;
    while ((next < w->n || inflight || pending) && sload_now_ns() < deadline) {
        while (inflight + pending < window && next < w->n) {
            struct gconn *c = &w->conns[next++];
            int fd = connect_start(w->sh->cfg->port, c->clogged);
            if (fd < 0) {
                c->state = C_DEAD;
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
        int64_t now = sload_now_ns();
        for (int i = 0; i < m; i++) {
            struct gconn *c = evs[i].data.ptr;
            if (c->state == C_CONNECTING) {
                inflight--;
                if (sload_connect_result(c->fd) != 0 || !(evs[i].events & EPOLLOUT)) {
                    w->connect_errors++;
                    kill_conn(w, c);
                    continue;
                }
                c->state = C_HANDSHAKE;
                pending++;
                set_events(w, c, 0);
                conn_write(w, c, (const uint8_t *)connect_req, (uint32_t)sizeof connect_req - 1);
            } else if (c->state == C_HANDSHAKE) {
                if (evs[i].events & EPOLLOUT)
                    flush_out(w, c);
                if (c->state == C_HANDSHAKE && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                    on_readable(w, c, now);
                if (c->state != C_HANDSHAKE)
                    pending--;
            }
        }
    }
    for (uint32_t i = 0; i < w->n; i++) {
        struct gconn *c = &w->conns[i];
        if (c->state == C_CONNECTING) {
            w->connect_errors++;
            kill_conn(w, c);
        } else if (c->state == C_HANDSHAKE) {
            w->handshake_errors++;
            kill_conn(w, c);
        }
    }
}

/*
 * Whether a clogged connection was closed by the router: reads what is
 * queued for it (the router's kernel sends the rest of its buffer as this
 * side reads) until end of stream or a reset (closed), or until nothing has
 * come for 200 ms or the deadline passed (open).
 */
static int closed_by_peer(struct gconn *c, int64_t deadline)
{
    uint8_t sink[16384];
    for (;;) {
        ssize_t k = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (k == 0)
            return 1;
        if (k > 0) {
            if (sload_now_ns() > deadline)
                return 0;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return 1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0 || sload_now_ns() > deadline)
            return 0;
    }
}

static double exp_sample(uint64_t *rng, double mean)
{
    double u = rand01(rng);
    return -mean * log(1 - u);
}

static void *worker_main(void *arg)
{
    struct gworker *w = arg;
    struct gshared *sh = w->sh;
    const sload_gnu_config_t *cfg = sh->cfg;
    uint32_t window = cfg->connect_window / cfg->threads;
    connect_all(w, window ? window : 1);
    if (sload__gate_wait(&sh->gate, sh->connect_deadline) != 0)
        return NULL;
    w->t0 = sload__gate_start(&sh->gate);
    w->from = w->t0 + (int64_t)(cfg->warmup_s * 1e9);
    w->to = w->from + (int64_t)(cfg->duration_s * 1e9);
    int64_t drain_to = w->to + (int64_t)(cfg->drain_s * 1e9);
    double rate = cfg->rate / cfg->threads;
    double speed = cfg->trace_speed > 0 ? cfg->trace_speed : 1;
    /* Bursts: on periods at burst x rate, off periods silent, the same mean. */
    double burst = cfg->burst >= 1 ? cfg->burst : 1;
    int on = 1;
    int64_t phase_end = burst > 1 ? w->t0 + (int64_t)(exp_sample(&w->rng, cfg->burst_on_ms) * 1e6) : INT64_MAX;
    double gap_ns = rate > 0 ? 1e9 / (rate * burst) : 1e18;
    int64_t next_send = w->t0;
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = sload_now_ns();
        if (now >= drain_to)
            break;
        /* Offer everything due (open loop: a late start does not thin the load). */
        if (now < w->to) {
            if (sh->events) {
                while (w->next_mine < w->n_mine) {
                    uint64_t i = w->trace_mine[w->next_mine];
                    if (w->t0 + (int64_t)((double)sh->events[i].at_ns / speed) > now)
                        break;
                    send_trace(w, i, now);
                    w->next_mine++;
                }
            } else {
                while (next_send <= now) {
                    if (now >= phase_end) {
                        on = !on;
                        double mean = on ? cfg->burst_on_ms : cfg->burst_on_ms * (burst - 1);
                        phase_end += (int64_t)(exp_sample(&w->rng, mean) * 1e6);
                        if (!on) {
                            next_send = phase_end;
                            continue;
                        }
                        next_send = now;
                    }
                    if (!on)
                        break;
                    send_synthetic(w, now);
                    next_send += (int64_t)gap_ns;
                }
            }
        }
        int64_t wait_ns = now < w->to ? next_send - now : drain_to - now;
        if (sh->events && now < w->to)
            wait_ns = w->next_mine < w->n_mine
                ? w->t0 + (int64_t)((double)sh->events[w->trace_mine[w->next_mine]].at_ns / speed) - now
                : 50000000;
        int timeout = wait_ns <= 0 ? 0 : (int)(wait_ns / 1000000) + 1;
        if (timeout > 50)
            timeout = 50;
        int m = epoll_wait(w->ep, evs, 256, timeout);
        now = sload_now_ns();
        for (int i = 0; i < m; i++) {
            struct gconn *c = evs[i].data.ptr;
            if (c->state != C_UP)
                continue;
            if (c->clogged && (evs[i].events & (EPOLLERR | EPOLLHUP))) {
                /* Reported whatever the interest set: park it until the final check. */
                epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->parked = 1;
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->want_out)
                flush_out(w, c);
            if (c->state == C_UP && !c->clogged && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(w, c, now);
        }
    }
    int64_t check_to = sload_now_ns() + 5000000000LL;
    for (uint32_t i = 0; i < w->n; i++) {
        struct gconn *c = &w->conns[i];
        if (c->clogged && c->state == C_UP && closed_by_peer(c, check_to))
            w->clogged_closed++;
    }
    return NULL;
}

/* MARK: traces */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int parse_trace(const char *path, struct gevent **out, uint64_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    struct gevent *ev = NULL;
    uint64_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    int rc = 0;
    while (getline(&line, &lcap, f) >= 0) {
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == 0 || *s == '#')
            continue;
        long long at;
        unsigned conn, ttl, hops;
        char type[16], ref[32];
        int used = 0;
        if (sscanf(s, "%lld %u %15s %u %u %31s %n", &at, &conn, type, &ttl, &hops, ref, &used) < 6 || at < 0 ||
            ttl > 255 || hops > 255) {
            rc = -EINVAL;
            break;
        }
        int t = -1;
        for (int i = 0; i < SLOAD_GNU_TYPES; i++)
            if (strcmp(type, type_names[i]) == 0)
                t = i;
        if (t < 0) {
            rc = -EINVAL;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            struct gevent *p = realloc(ev, cap * sizeof *p);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            ev = p;
        }
        struct gevent *e = &ev[n];
        memset(e, 0, sizeof *e);
        e->at_ns = at * 1000;
        e->conn = conn;
        e->type = (uint8_t)t;
        e->ttl = (uint8_t)ttl;
        e->hops = (uint8_t)hops;
        e->ref = strcmp(ref, "-") == 0 ? -1 : strtoll(ref, NULL, 10);
        if (e->ref >= (int64_t)n) { /* a reference must point back */
            rc = -EINVAL;
            break;
        }
        char *p = s + used;
        size_t hl = 0;
        while (p[hl] && !isspace((unsigned char)p[hl]))
            hl++;
        if (hl > 0) {
            if (hl % 2 || hl / 2 > MAX_PAYLOAD || !(e->payload = malloc(hl / 2 + 1))) {
                rc = hl % 2 || hl / 2 > MAX_PAYLOAD ? -EINVAL : -ENOMEM;
                break;
            }
            for (size_t i = 0; i < hl / 2; i++) {
                int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
                if (hi < 0 || lo < 0) {
                    rc = -EINVAL;
                    break;
                }
                e->payload[i] = (uint8_t)(hi << 4 | lo);
            }
            e->plen = (uint32_t)(hl / 2);
            e->has_payload = 1;
        }
        n++;
        if (rc)
            break;
    }
    free(line);
    fclose(f);
    if (rc == 0 && n == 0)
        rc = -EINVAL;
    if (rc) {
        for (uint64_t i = 0; i <= n && i < cap; i++)
            free(ev[i].payload);
        free(ev);
        return rc;
    }
    *out = ev;
    *count = n;
    return 0;
}

static int by_index(const void *a, const void *b)
{
    uint64_t x = ((const struct record_line *)a)->index, y = ((const struct record_line *)b)->index;
    return x < y ? -1 : x > y;
}

static void write_record(const sload_gnu_config_t *cfg, struct gworker *ws, uint32_t n)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += ws[i].n_lines;
    struct record_line *all = malloc((total ? total : 1) * sizeof *all);
    FILE *f = fopen(cfg->record_path, "w");
    if (all && f) {
        uint64_t k = 0;
        for (uint32_t i = 0; i < n; i++)
            for (uint64_t j = 0; j < ws[i].n_lines; j++)
                all[k++] = ws[i].lines[j];
        qsort(all, total, sizeof *all, by_index);
        /* Indexes are dense from 0 except for descriptors never sent; renumber refs. */
        uint64_t max = total ? all[total - 1].index + 1 : 0;
        int64_t *line_of = malloc((max ? max : 1) * sizeof *line_of);
        for (uint64_t i = 0; line_of && i < max; i++)
            line_of[i] = -1;
        for (uint64_t i = 0; line_of && i < total; i++)
            line_of[all[i].index] = (int64_t)i;
        fprintf(f, "# seda-gnutella trace v1: offset_us connection type ttl hops ref [payload_hex]\n");
        for (uint64_t i = 0; i < total; i++) {
            long long at;
            unsigned conn, ttl, hops;
            char type[16], ref[32];
            if (sscanf(all[i].text, "%lld %u %15s %u %u %31s", &at, &conn, type, &ttl, &hops, ref) == 6 &&
                strcmp(ref, "-") != 0 && line_of) {
                long long r = strtoll(ref, NULL, 10);
                long long line = r >= 0 && (uint64_t)r < max ? line_of[r] : -1;
                if (line >= 0)
                    fprintf(f, "%lld %u %s %u %u %lld\n", at, conn, type, ttl, hops, line);
                else
                    fprintf(f, "%lld %u %s %u %u -\n", at, conn, type, ttl, hops);
            } else {
                fputs(all[i].text, f);
            }
        }
        free(line_of);
    }
    if (f)
        fclose(f);
    free(all);
}

/* MARK: the run */

void sload_gnu_result_free(sload_gnu_result_t *out)
{
    for (int t = 0; t < SLOAD_GNU_TYPES; t++) {
        sload_hist_destroy(out->latency[t]);
        out->latency[t] = NULL;
    }
    sload_hist_destroy(out->latency_all);
    out->latency_all = NULL;
    free(out->timeline);
    out->timeline = NULL;
}

int sload_gnu_run(const sload_gnu_config_t *cfg_in, sload_gnu_result_t *out)
{
    sload_gnu_config_t cfg = *cfg_in;
    memset(out, 0, sizeof *out);
    if (cfg.port == 0 || cfg.connections == 0 || cfg.warmup_s < 0 || cfg.query_bytes > 4000 || cfg.ttl == 0)
        return -EINVAL;
    if (!cfg.trace_path && (cfg.duration_s <= 0 || cfg.rate <= 0))
        return -EINVAL;
    if (cfg.threads == 0)
        cfg.threads = 1;
    if (cfg.threads > cfg.connections)
        cfg.threads = cfg.connections;
    if (cfg.connect_window == 0)
        cfg.connect_window = 256;
    if (cfg.connect_limit_s <= 0)
        cfg.connect_limit_s = 30;
    if (cfg.drain_s <= 0)
        cfg.drain_s = 1;
    double wsum = 0;
    for (int t = 0; t < SLOAD_GNU_TYPES; t++) {
        if (cfg.mix[t] < 0)
            return -EINVAL;
        wsum += cfg.mix[t];
    }
    if (wsum <= 0)
        return -EINVAL;
    long limit = sload_raise_nofile();
    if (limit > 0 && (long)cfg.connections + 16 + 2 * (long)cfg.threads > limit)
        return -EMFILE;

    struct gshared sh = {.cfg = &cfg};
    double acc = 0;
    for (int t = 0; t < SLOAD_GNU_TYPES; t++) {
        acc += cfg.mix[t] / wsum;
        sh.mix_cum[t] = acc;
    }
    int rc = 0;
    if (cfg.trace_path) {
        rc = parse_trace(cfg.trace_path, &sh.events, &sh.n_events);
        if (rc)
            return rc;
        /* A replay is measured whole: no warm-up, the trace's length. */
        double len_s = (double)sh.events[sh.n_events - 1].at_ns / 1e9 / (cfg.trace_speed > 0 ? cfg.trace_speed : 1);
        cfg.warmup_s = 0;
        cfg.duration_s = len_s + 0.05;
        sh.sent_at = calloc(sh.n_events, sizeof *sh.sent_at);
        if (!sh.sent_at)
            rc = -ENOMEM;
    }
    sh.seconds = (uint32_t)ceil(cfg.warmup_s + cfg.duration_s + cfg.drain_s) + 2;
    struct gworker *ws = calloc(cfg.threads, sizeof *ws);
    struct gconn *conns = calloc(cfg.connections, sizeof *conns);
    out->timeline = calloc(sh.seconds, sizeof *out->timeline);
    out->latency_all = sload_hist_create();
    for (int t = 0; t < SLOAD_GNU_TYPES; t++)
        out->latency[t] = sload_hist_create();
    if (!ws || !conns || !out->timeline || !out->latency_all)
        rc = -ENOMEM;
    for (int t = 0; rc == 0 && t < SLOAD_GNU_TYPES; t++)
        if (!out->latency[t])
            rc = -ENOMEM;
    /* Connection i goes to thread i % threads: a trace's connection numbers spread over them. */
    uint32_t *fill = calloc(cfg.threads, sizeof *fill);
    if (!fill)
        rc = -ENOMEM;
    for (uint32_t i = 0; ws && i < cfg.threads; i++)
        ws[i].ep = -1;
    for (uint32_t i = 0; rc == 0 && i < cfg.threads; i++) {
        struct gworker *w = &ws[i];
        w->sh = &sh;
        w->windex = i;
        w->n = cfg.connections / cfg.threads + (i < cfg.connections % cfg.threads);
        w->conns = conns;
        for (uint32_t j = 0; j < i; j++)
            w->conns += ws[j].n;
        w->rng = cfg.seed * UINT64_C(0x9E3779B97F4A7C15) + i + 1;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->lat_all = sload_hist_create();
        w->sec_buckets = calloc((size_t)sh.seconds * SEC_BUCKETS, sizeof *w->sec_buckets);
        for (int t = 0; t < SLOAD_GNU_TYPES; t++)
            w->lat[t] = sload_hist_create();
        if (w->ep < 0 || !w->lat_all || !w->sec_buckets)
            rc = -ENOMEM;
        for (int t = 0; t < SLOAD_GNU_TYPES; t++)
            if (!w->lat[t])
                rc = -ENOMEM;
        for (uint32_t j = 0; j < w->n; j++) {
            struct gconn *c = &w->conns[j];
            c->fd = -1;
            c->index = i + j * cfg.threads;
            /* The first clogged/threads connections of each thread stop reading. */
            c->clogged = j < cfg.clogged / cfg.threads + (i < cfg.clogged % cfg.threads);
        }
    }
    for (uint64_t e = 0; rc == 0 && e < sh.n_events; e++)
        fill[sh.events[e].conn % cfg.connections % cfg.threads]++;
    for (uint32_t i = 0; rc == 0 && sh.events && i < cfg.threads; i++) {
        ws[i].trace_mine = malloc((fill[i] ? fill[i] : 1) * sizeof *ws[i].trace_mine);
        if (!ws[i].trace_mine)
            rc = -ENOMEM;
    }
    for (uint64_t e = 0; rc == 0 && e < sh.n_events; e++) {
        uint32_t conn = sh.events[e].conn % cfg.connections;
        sh.events[e].conn = conn;
        struct gworker *w = &ws[conn % cfg.threads];
        w->trace_mine[w->n_mine++] = e;
    }
    free(fill);
    sh.connect_deadline = sload_now_ns() + (int64_t)(cfg.connect_limit_s * 1e9);
    uint32_t started = 0;
    for (; rc == 0 && started < cfg.threads; started++) {
        int e = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (e != 0) {
            rc = -e;
            break;
        }
    }
    sload__gate_open(&sh.gate, started);

    /* Once a second: the timeline (and progress). */
    uint64_t last_sent = 0, last_recv = 0, last_type[SLOAD_GNU_TYPES] = {0};
    uint8_t *gone = calloc(started ? started : 1, 1);
    uint32_t joined = 0, slot = 0;
    int64_t next_tick = 0;
    while (joined < started && gone) {
        for (uint32_t i = 0; i < started; i++)
            if (!gone[i] && pthread_tryjoin_np(ws[i].tid, NULL) == 0) {
                gone[i] = 1;
                joined++;
            }
        int64_t t0 = sload__gate_start(&sh.gate);
        int64_t now = sload_now_ns();
        if (t0 && next_tick == 0)
            next_tick = t0 + 1000000000;
        if (next_tick && now >= next_tick && slot < sh.seconds) {
            sload_gnu_second_t *s = &out->timeline[slot++];
            uint64_t sent = 0, recv = 0, type[SLOAD_GNU_TYPES] = {0};
            uint32_t open = 0;
            for (uint32_t i = 0; i < started; i++) {
                sent += atomic_load_explicit(&ws[i].sent_total, memory_order_relaxed);
                recv += atomic_load_explicit(&ws[i].recv_total, memory_order_relaxed);
                open += atomic_load_explicit(&ws[i].open, memory_order_relaxed);
                for (int t = 0; t < SLOAD_GNU_TYPES; t++)
                    type[t] += atomic_load_explicit(&ws[i].recv_type[t], memory_order_relaxed);
            }
            s->t = (double)(next_tick - t0) / 1e9;
            s->sent = sent - last_sent;
            s->received = recv - last_recv;
            for (int t = 0; t < SLOAD_GNU_TYPES; t++) {
                s->received_type[t] = type[t] - last_type[t];
                last_type[t] = type[t];
            }
            s->open = open;
            s->server_rss_kb = cfg.server_pid > 0 ? sload_rss_kb(cfg.server_pid) : 0;
            last_sent = sent;
            last_recv = recv;
            if (cfg.progress)
                fprintf(stderr, "gnutella: %5.1f s  open %u  sent %llu/s  received %llu/s%s%llu%s\n", s->t, open,
                        (unsigned long long)s->sent, (unsigned long long)s->received,
                        cfg.server_pid > 0 ? "  server RSS " : "",
                        (unsigned long long)(cfg.server_pid > 0 ? s->server_rss_kb : 0),
                        cfg.server_pid > 0 ? " KB" : "");
            next_tick += 1000000000;
        }
        if (joined < started) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    for (uint32_t i = 0; i < started; i++)
        if (!gone || !gone[i])
            pthread_join(ws[i].tid, NULL);
    free(gone);
    out->seconds = slot;

    /* Per-second p99 from the coarse buckets. */
    for (uint32_t s = 0; s < out->seconds && ws; s++) {
        uint64_t b[SEC_BUCKETS] = {0}, total = 0;
        for (uint32_t i = 0; i < cfg.threads; i++)
            for (int k = 0; k < SEC_BUCKETS && ws[i].sec_buckets; k++) {
                b[k] += ws[i].sec_buckets[(size_t)s * SEC_BUCKETS + k];
                total += ws[i].sec_buckets[(size_t)s * SEC_BUCKETS + k];
            }
        uint64_t want = (uint64_t)ceil(0.99 * (double)total), seen = 0;
        for (int k = 0; k < SEC_BUCKETS && total; k++) {
            seen += b[k];
            if (seen >= want) {
                out->timeline[s].p99_ns = (int64_t)(1000.0 * pow(2, k / 2.0));
                break;
            }
        }
    }
    for (uint32_t s = 0; s < out->seconds; s++) {
        uint64_t kb = out->timeline[s].server_rss_kb;
        if (s == 0)
            out->rss_first_kb = kb;
        if (kb > out->rss_max_kb)
            out->rss_max_kb = kb;
        out->rss_last_kb = kb;
    }
    if (cfg.record_path && ws)
        write_record(&cfg, ws, cfg.threads);
    for (uint32_t i = 0; ws && i < cfg.threads; i++) {
        struct gworker *w = &ws[i];
        out->connected += atomic_load_explicit(&w->up, memory_order_relaxed);
        out->connect_errors += w->connect_errors;
        out->handshake_errors += w->handshake_errors;
        out->closed_by_server += w->closed_by_server;
        out->clogged_closed += w->clogged_closed;
        out->protocol_errors += w->protocol_errors;
        out->unanswerable += w->unanswerable;
        out->backlog_drops += w->backlog_drops;
        out->foreign += w->foreign;
        for (int t = 0; t < SLOAD_GNU_TYPES; t++) {
            out->sent[t] += w->sent[t];
            out->received[t] += w->received[t];
            if (w->lat[t] && out->latency[t])
                sload_hist_merge(out->latency[t], w->lat[t]);
            sload_hist_destroy(w->lat[t]);
        }
        if (w->lat_all && out->latency_all)
            sload_hist_merge(out->latency_all, w->lat_all);
        sload_hist_destroy(w->lat_all);
        free(w->sec_buckets);
        free(w->trace_mine);
        for (uint64_t j = 0; j < w->n_lines; j++)
            free(w->lines[j].text);
        free(w->lines);
        if (w->ep >= 0)
            close(w->ep);
    }
    for (uint32_t i = 0; conns && i < cfg.connections; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
        free(conns[i].in);
        free(conns[i].out);
    }
    for (uint64_t e = 0; e < sh.n_events; e++)
        free(sh.events[e].payload);
    free(sh.events);
    free(sh.sent_at);
    out->window_s = cfg.duration_s;
    free(ws);
    free(conns);
    if (rc != 0)
        sload_gnu_result_free(out);
    return rc;
}
