/*
 * The bare epoll Gnutella router: the anchor for seda-bench gnutella. One
 * thread, level-triggered epoll, the 0.4 handshake and the same routing
 * rules as SedaGnutella (flood pings and queries to all but the sender,
 * TTL down and hops up, nothing at TTL 0, TTL + hops clamped to 7,
 * duplicates dropped, pongs and query hits back along their request's
 * path, pushes towards the query hit's servent; route tables in two
 * generations rotated every half lifetime, bounded). Output is appended to
 * per-connection buffers and flushed once per loop turn; with
 * --outgoing-limit a connection whose buffer passes the limit is closed
 * (the seed's socket queue thresholding), without it the buffer grows.
 * No logger, no delay: the loop's own cost per descriptor.
 */
#define _GNU_SOURCE
#include "baseline.h"
#include "sload_net.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum { HDR = 23, MAX_TTL = 7 };

static const char connect_req[] = "GNUTELLA CONNECT/0.4\n\n";
static const char connect_ok[] = "GNUTELLA OK\n\n";

struct gconn {
    int fd;                 /* -1 once closed (freed at the end of the turn) */
    uint64_t id;            /* never reused, unlike the descriptor */
    uint8_t hs;             /* bytes of the CONNECT matched; == sizeof - 1 when handshaken */
    uint8_t dirty;          /* has output to flush this turn */
    uint8_t want_out;
    uint32_t slot;          /* index in the neighbour list, when handshaken */
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
};

/* A route table: open addressing over 16-byte keys, two generations. */
struct entry {
    uint8_t key[16];
    uint64_t conn;          /* the connection's id; 0: empty */
    int32_t fd;             /* where it was (check the id: descriptors are reused) */
};
struct table {
    struct entry *gen[2];   /* [0] current, [1] previous */
    uint32_t count[2];
    uint32_t mask;          /* capacity - 1 of each generation */
    uint32_t limit;         /* most entries in a generation (half its capacity) */
};

struct router {
    int ep, lfd, sigfd;
    struct gconn **by_fd;
    long cap;
    struct gconn **neigh;   /* handshaken connections */
    uint32_t n_neigh;
    struct gconn **dirty;
    uint32_t n_dirty;
    struct gconn **graveyard; /* closed this turn: epoll may still name them */
    uint32_t n_graveyard;
    uint64_t next_id;
    struct table pings, queries, pushes, push_seen;
    uint32_t max_payload;
    size_t out_limit;       /* 0: none */
    int64_t rotate_every, next_rotate;
    uint64_t received, forwarded, dropped, closed_clogged, closed_bad, accepted;
};

static int table_init(struct table *t, uint32_t entries)
{
    uint32_t cap = 16;
    while (cap < 2 * entries)
        cap *= 2;
    t->mask = cap - 1;
    t->limit = cap / 2;
    t->gen[0] = calloc(cap, sizeof(struct entry));
    t->gen[1] = calloc(cap, sizeof(struct entry));
    return t->gen[0] && t->gen[1] ? 0 : -1;
}

static uint32_t hash16(const uint8_t *k)
{
    uint64_t a, b;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    uint64_t h = (a ^ (b * UINT64_C(0x9E3779B97F4A7C15))) * UINT64_C(0xff51afd7ed558ccd);
    return (uint32_t)(h >> 32);
}

static struct entry *probe(struct table *t, int g, const uint8_t *key)
{
    for (uint32_t i = hash16(key) & t->mask;; i = (i + 1) & t->mask) {
        struct entry *e = &t->gen[g][i];
        if (e->conn == 0 || memcmp(e->key, key, 16) == 0)
            return e;
    }
}

static struct entry *table_find(struct table *t, const uint8_t *key)
{
    for (int g = 0; g < 2; g++) {
        struct entry *e = probe(t, g, key);
        if (e->conn)
            return e;
    }
    return NULL;
}

/* 1 inserted, 0 present, -1 full. `update` overwrites (push routes). */
static int table_put(struct table *t, const uint8_t *key, const struct gconn *c, int update)
{
    if (!update && table_find(t, key))
        return 0;
    struct entry *e = probe(t, 0, key);
    if (e->conn) {
        e->conn = c->id;
        e->fd = c->fd;
        return update ? 1 : 0;
    }
    if (t->count[0] >= t->limit)
        return -1;
    memcpy(e->key, key, 16);
    e->conn = c->id;
    e->fd = c->fd;
    t->count[0]++;
    return 1;
}

static void table_rotate(struct table *t)
{
    struct entry *old = t->gen[1];
    t->gen[1] = t->gen[0];
    t->count[1] = t->count[0];
    memset(old, 0, ((size_t)t->mask + 1) * sizeof *old);
    t->gen[0] = old;
    t->count[0] = 0;
}

/* The live connection a route names, or NULL if it has gone (its descriptor may be reused). */
static struct gconn *conn_of(struct router *r, const struct entry *e)
{
    struct gconn *c = e ? r->by_fd[e->fd] : NULL;
    return c && c->id == e->conn ? c : NULL;
}

static void conn_close(struct router *r, struct gconn *c)
{
    if (c->hs == sizeof connect_req - 1) {
        struct gconn *last = r->neigh[--r->n_neigh];
        r->neigh[c->slot] = last;
        last->slot = c->slot;
    }
    for (uint32_t i = 0; i < r->n_dirty; i++)
        if (r->dirty[i] == c)
            r->dirty[i] = r->dirty[--r->n_dirty];
    r->by_fd[c->fd] = NULL;
    close(c->fd);
    c->fd = -1;
    r->graveyard[r->n_graveyard++] = c;
}

/* Appends; returns -1 when the connection passed its limit (closed). */
static int queue_out(struct router *r, struct gconn *c, const uint8_t *p, size_t n)
{
    if (r->out_limit && c->out_len - c->out_off + n > r->out_limit) {
        r->closed_clogged++;
        conn_close(r, c);
        return -1;
    }
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        uint8_t *q = realloc(c->out, cap);
        if (!q) {
            conn_close(r, c);
            return -1;
        }
        c->out = q;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    if (!c->dirty) {
        c->dirty = 1;
        r->dirty[r->n_dirty++] = c;
    }
    return 0;
}

static void set_out(struct router *r, struct gconn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)on;
}

/* 0, or -1 when the connection died. */
static int flush(struct router *r, struct gconn *c)
{
    while (c->out_len > c->out_off) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_out(r, c, 1);
                return 0;
            }
            conn_close(r, c);
            return -1;
        }
        c->out_off += (size_t)k;
    }
    c->out_off = c->out_len = 0;
    set_out(r, c, 0);
    return 0;
}

static void route(struct router *r, struct gconn *from, uint8_t *d, uint32_t plen)
{
    uint8_t type = d[16], *ttl = &d[17], *hops = &d[18];
    r->received++;
    if (*ttl + *hops > MAX_TTL)
        *ttl = *hops >= MAX_TTL ? 0 : (uint8_t)(MAX_TTL - *hops);
    struct gconn *to = NULL;
    int flood = 0;
    switch (type) {
    case 0x00:
    case 0x80: {
        int k = table_put(type == 0x00 ? &r->pings : &r->queries, d, from, 0);
        if (k <= 0) {
            r->dropped++;
            return;
        }
        flood = 1;
        break;
    }
    case 0x01:
    case 0x81: {
        struct gconn *back = conn_of(r, table_find(type == 0x01 ? &r->pings : &r->queries, d));
        if (type == 0x81 && plen >= 27)
            table_put(&r->pushes, d + HDR + plen - 16, from, 1);
        to = back != from ? back : NULL;
        break;
    }
    case 0x40: {
        if (plen < 26 || table_put(&r->push_seen, d, from, 0) <= 0) {
            r->dropped++;
            return;
        }
        struct gconn *target = conn_of(r, table_find(&r->pushes, d + HDR));
        to = target != from ? target : NULL;
        break;
    }
    }
    if ((!flood && !to) || *ttl == 0) {
        r->dropped++;
        return;
    }
    (*ttl)--;
    if (*hops < 255)
        (*hops)++;
    if (*ttl == 0) {
        r->dropped++;
        return;
    }
    if (to) {
        if (queue_out(r, to, d, HDR + plen) == 0)
            r->forwarded++;
        return;
    }
    /* Backwards: queue_out may close (and swap out) the current neighbour. */
    for (uint32_t i = r->n_neigh; i-- > 0;) {
        if (i >= r->n_neigh)
            continue;
        struct gconn *c = r->neigh[i];
        if (c != from && queue_out(r, c, d, HDR + plen) == 0)
            r->forwarded++;
    }
}

static void on_read(struct router *r, struct gconn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            uint32_t cap = c->in_cap ? 2 * c->in_cap : 8192;
            if (cap > HDR + r->max_payload + 8192)
                cap = HDR + r->max_payload + 8192;
            uint8_t *p = cap > c->in_cap ? realloc(c->in, cap) : NULL;
            if (!p) {
                conn_close(r, c);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t k = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN)
            return;
        if (k <= 0) {
            conn_close(r, c);
            return;
        }
        c->in_len += (uint32_t)k;
        uint32_t at = 0;
        const uint32_t need = sizeof connect_req - 1;
        while (c->hs < need && at < c->in_len) {
            if (c->in[at] != (uint8_t)connect_req[c->hs]) {
                r->closed_bad++;
                conn_close(r, c);
                return;
            }
            at++;
            if (++c->hs == need) {
                c->slot = r->n_neigh;
                r->neigh[r->n_neigh++] = c;
                if (queue_out(r, c, (const uint8_t *)connect_ok, sizeof connect_ok - 1) != 0)
                    return;
            }
        }
        while (c->hs == need && c->in_len - at >= HDR) {
            uint8_t *d = c->in + at, t = d[16];
            uint32_t plen;
            memcpy(&plen, d + 19, 4);
            if ((t != 0x00 && t != 0x01 && t != 0x40 && t != 0x80 && t != 0x81) || plen > r->max_payload) {
                r->closed_bad++;
                conn_close(r, c);
                return;
            }
            if (c->in_len - at < HDR + plen)
                break;
            route(r, c, d, plen); /* never closes the sender: it writes to the others */
            at += HDR + plen;
        }
        memmove(c->in, c->in + at, c->in_len - at);
        c->in_len -= at;
    }
}

static void on_accept(struct router *r)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct gconn *c = calloc(1, sizeof *c);
        if (!c || fd >= r->cap) {
            free(c);
            close(fd);
            continue;
        }
        sload_set_nodelay(fd);
        c->fd = fd;
        c->id = ++r->next_id;
        r->by_fd[fd] = c;
        r->accepted++;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

int baseline_gnutella_epoll(int argc, char **argv)
{
    uint16_t port = 0;
    long limit = 0, table = 100000, lifetime_s = 60, max_payload = 65536;
    static const struct option longs[] = {{"port", required_argument, 0, 'p'},
                                          {"outgoing-limit", required_argument, 0, 'o'},
                                          {"table-capacity", required_argument, 0, 't'},
                                          {"route-lifetime", required_argument, 0, 'l'},
                                          {"max-payload", required_argument, 0, 'm'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "p:o:t:l:m:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'p': port = (uint16_t)atoi(optarg); break;
        case 'o': limit = atol(optarg); break;
        case 't': table = atol(optarg); break;
        case 'l': lifetime_s = atol(optarg); break;
        case 'm': max_payload = atol(optarg); break;
        case 'h':
        default:
            fprintf(ch == 'h' ? stdout : stderr,
                    "usage: seda-baseline gnutella-epoll [--port N] [--outgoing-limit BYTES] [--table-capacity N]\n"
                    "                                    [--route-lifetime S] [--max-payload BYTES]\n"
                    "  A bare one-thread epoll Gnutella 0.4 router (the anchor of seda-bench gnutella).\n"
                    "  --outgoing-limit 0 (the default) lets a peer's output grow without bound.\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (limit < 0 || table < 1 || table > (1L << 28) || lifetime_s < 1 || max_payload < 0 || max_payload > (1L << 24)) {
        fprintf(stderr, "gnutella-epoll: bad option value\n");
        return 2;
    }
    struct router r = {.max_payload = (uint32_t)max_payload, .out_limit = (size_t)limit};
    r.cap = sload_raise_nofile();
    if (table_init(&r.pings, (uint32_t)table) || table_init(&r.queries, (uint32_t)table) ||
        table_init(&r.pushes, (uint32_t)table) || table_init(&r.push_seen, (uint32_t)table)) {
        fprintf(stderr, "gnutella-epoll: out of memory\n");
        return 1;
    }
    r.by_fd = calloc((size_t)r.cap, sizeof *r.by_fd);
    r.neigh = calloc((size_t)r.cap, sizeof *r.neigh);
    r.dirty = calloc((size_t)r.cap, sizeof *r.dirty);
    r.graveyard = calloc((size_t)r.cap, sizeof *r.graveyard);
    if (!r.by_fd || !r.neigh || !r.dirty || !r.graveyard) {
        fprintf(stderr, "gnutella-epoll: out of memory\n");
        return 1;
    }
    sigset_t stop;
    sload_block_stop_signals(&stop);
    r.sigfd = signalfd(-1, &stop, SFD_CLOEXEC);
    uint16_t bound = 0;
    r.lfd = sload_listen(port, 4096, 0, 1, &bound);
    if (r.lfd < 0) {
        fprintf(stderr, "gnutella-epoll: cannot listen on 127.0.0.1:%u: %s\n", port, strerror(-r.lfd));
        return 1;
    }
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &r};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &r.sigfd};
    epoll_ctl(r.ep, EPOLL_CTL_ADD, r.lfd, &lev);
    epoll_ctl(r.ep, EPOLL_CTL_ADD, r.sigfd, &sev);
    printf("gnutella-epoll: listening on 127.0.0.1:%u\n", bound);
    fflush(stdout);
    r.rotate_every = lifetime_s * 500000000LL;
    r.next_rotate = sload_now_ns() + r.rotate_every;
    struct epoll_event evs[256];
    int running = 1;
    while (running) {
        int n = epoll_wait(r.ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &r) {
                on_accept(&r);
                continue;
            }
            if (evs[i].data.ptr == &r.sigfd) {
                running = 0;
                continue;
            }
            struct gconn *c = evs[i].data.ptr;
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                flush(&r, c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_read(&r, c);
        }
        /* One flush per connection per turn. */
        while (r.n_dirty) {
            struct gconn *c = r.dirty[--r.n_dirty];
            c->dirty = 0;
            flush(&r, c);
        }
        int64_t now = sload_now_ns();
        if (now >= r.next_rotate) {
            table_rotate(&r.pings);
            table_rotate(&r.queries);
            table_rotate(&r.pushes);
            table_rotate(&r.push_seen);
            r.next_rotate = now + r.rotate_every;
        }
        while (r.n_graveyard) {
            struct gconn *c = r.graveyard[--r.n_graveyard];
            free(c->in);
            free(c->out);
            free(c);
        }
    }
    for (long fd = 0; fd < r.cap; fd++)
        if (r.by_fd[fd])
            conn_close(&r, r.by_fd[fd]);
    while (r.n_graveyard) {
        struct gconn *c = r.graveyard[--r.n_graveyard];
        free(c->in);
        free(c->out);
        free(c);
    }
    fprintf(stderr,
            "gnutella-epoll: stopped: %llu connections, %llu descriptors in, %llu out, %llu dropped, "
            "%llu closed clogged, %llu closed for bad input\n",
            (unsigned long long)r.accepted, (unsigned long long)r.received, (unsigned long long)r.forwarded,
            (unsigned long long)r.dropped, (unsigned long long)r.closed_clogged, (unsigned long long)r.closed_bad);
    close(r.lfd);
    close(r.ep);
    close(r.sigfd);
    for (int i = 0; i < 2; i++) {
        free(r.pings.gen[i]);
        free(r.queries.gen[i]);
        free(r.pushes.gen[i]);
        free(r.push_seen.gen[i]);
    }
    free(r.by_fd);
    free(r.neigh);
    free(r.dirty);
    free(r.graveyard);
    return 0;
}
