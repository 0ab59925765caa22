/*
 * Timer benchmark kernel: the cost of add, cancel and fire as the number of
 * pending timers grows, on a manual clock (no sleeping, no thread), with a
 * binary heap under a mutex, the usual alternative, measured on the same
 * workload as the anchor.
 *
 * Workload: `pending` timers at random deadlines spread over one hour, then
 * `ops` pairs of (add a timer at a random deadline within the hour, cancel a
 * random pending one), then firing: the clock advances in steps of about 32
 * expiries each and polls, and every fired timer re-arms one at a random
 * deadline within the hour, so the population stays at `pending` throughout.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seda/clock.h"
#include "seda/timer.h"
#include "seda_bench.h"

#define SPAN (INT64_C(3600) * 1000000000) /* deadlines within one hour */
#define START (INT64_C(1000) * 1000000000)

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint64_t rnd(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1du;
}

/* Fire phase step: about 32 expiries per poll in steady state, where
 * deadlines are uniform over the next SPAN (mean lifetime SPAN / 2). */
static int64_t fire_step(uint64_t pending)
{
    int64_t step = (int64_t)((double)SPAN / 2 * 32 / (double)pending);
    return step < 1000000 ? 1000000 : step;
}

/* ---- the wheel ------------------------------------------------------------- */

struct wheel_bench {
    seda_timers_t *t;
    seda_clock_t *clock;
    uint64_t rng;
    uint64_t fired;
};

static void never(void *ctx, void *target, void *event, int code)
{
    (void)ctx, (void)target, (void)event, (void)code;
    abort(); /* the deliver below never fails */
}

/* Fired: count it and re-arm one in its place. */
static int rearm(void *target, void *event)
{
    struct wheel_bench *w = target;
    w->fired++;
    int64_t at = seda_clock_now(w->clock) + 1 + (int64_t)(rnd(&w->rng) % (uint64_t)SPAN);
    return seda_timers_add_at(w->t, at, rearm, w, event, NULL) == 0 ? 0 : -ENOMEM;
}

static int bench_wheel(uint64_t pending, uint64_t ops, seda_bench_timer_result_t *out)
{
    struct wheel_bench w = { .rng = 0x9e3779b97f4a7c15u };
    seda_timer_id_t *ids = malloc(pending * sizeof *ids);
    int r = -ENOMEM;
    if (!ids)
        return r;
    if ((r = seda_clock_manual_create(&w.clock, START)) < 0)
        goto out_ids;
    if ((r = seda_timers_create(&w.t, w.clock, 0, never, NULL)) < 0)
        goto out_clock;

    int64_t t0 = wall_ns();
    for (uint64_t i = 0; i < pending; i++) {
        int64_t at = START + 1 + (int64_t)(rnd(&w.rng) % (uint64_t)SPAN);
        if ((r = seda_timers_add_at(w.t, at, rearm, &w, (void *)(uintptr_t)i, &ids[i])) < 0)
            goto out_timers;
    }
    int64_t t1 = wall_ns();
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t k = rnd(&w.rng) % pending;
        int64_t at = START + 1 + (int64_t)(rnd(&w.rng) % (uint64_t)SPAN);
        if ((r = seda_timers_cancel(w.t, ids[k], NULL)) < 0 ||
            (r = seda_timers_add_at(w.t, at, rearm, &w, (void *)(uintptr_t)k, &ids[k])) < 0)
            goto out_timers;
    }
    int64_t t2 = wall_ns();
    int64_t step = fire_step(pending);
    while (w.fired < ops) {
        seda_clock_manual_advance(w.clock, step);
        seda_timers_poll(w.t);
    }
    int64_t t3 = wall_ns();

    out->fill_ns = pending ? (double)(t1 - t0) / (double)pending : 0;
    out->add_cancel_ns = ops ? (double)(t2 - t1) / (double)ops : 0;
    out->fire_ns = w.fired ? (double)(t3 - t2) / (double)w.fired : 0;
    r = 0;
out_timers:
    seda_timers_destroy(w.t, NULL, NULL);
out_clock:
    seda_clock_destroy(w.clock);
out_ids:
    free(ids);
    return r;
}

/* ---- the anchor: an indexed binary heap under a mutex ----------------------- */

struct hnode {
    int64_t deadline;
    uint64_t seq; /* FIFO among equal deadlines, as the wheel */
    uint32_t id;
};

struct heap {
    pthread_mutex_t mu;
    struct hnode *a;
    uint32_t *pos; /* id -> index in a */
    uint64_t n, next_seq;
};

static inline int hless(const struct hnode *x, const struct hnode *y)
{
    return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

static inline void hset(struct heap *h, uint64_t i, struct hnode v)
{
    h->a[i] = v;
    h->pos[v.id] = (uint32_t)i;
}

static void hsift_up(struct heap *h, uint64_t i, struct hnode v)
{
    while (i > 0) {
        uint64_t p = (i - 1) / 2;
        if (!hless(&v, &h->a[p]))
            break;
        hset(h, i, h->a[p]);
        i = p;
    }
    hset(h, i, v);
}

static void hsift_down(struct heap *h, uint64_t i, struct hnode v)
{
    for (;;) {
        uint64_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && hless(&h->a[c + 1], &h->a[c]))
            c++;
        if (!hless(&h->a[c], &v))
            break;
        hset(h, i, h->a[c]);
        i = c;
    }
    hset(h, i, v);
}

static void heap_add(struct heap *h, uint32_t id, int64_t deadline)
{
    pthread_mutex_lock(&h->mu);
    struct hnode v = { deadline, h->next_seq++, id };
    hsift_up(h, h->n++, v);
    pthread_mutex_unlock(&h->mu);
}

static void heap_cancel(struct heap *h, uint32_t id)
{
    pthread_mutex_lock(&h->mu);
    uint64_t i = h->pos[id];
    struct hnode last = h->a[--h->n];
    if (i < h->n) {
        if (i > 0 && hless(&last, &h->a[(i - 1) / 2]))
            hsift_up(h, i, last);
        else
            hsift_down(h, i, last);
    }
    pthread_mutex_unlock(&h->mu);
}

/* Pops one due at `now` into *id; 0 when none is due. */
static int heap_pop_due(struct heap *h, int64_t now, uint32_t *id)
{
    pthread_mutex_lock(&h->mu);
    int got = h->n > 0 && h->a[0].deadline <= now;
    if (got) {
        *id = h->a[0].id;
        struct hnode last = h->a[--h->n];
        if (h->n > 0)
            hsift_down(h, 0, last);
    }
    pthread_mutex_unlock(&h->mu);
    return got;
}

static int bench_heap(uint64_t pending, uint64_t ops, seda_bench_timer_result_t *out)
{
    struct heap h = { .n = 0 };
    h.a = malloc(pending * sizeof *h.a);
    h.pos = malloc(pending * sizeof *h.pos);
    if (!h.a || !h.pos || pending > UINT32_MAX) {
        free(h.a);
        free(h.pos);
        return !h.a || !h.pos ? -ENOMEM : -EINVAL;
    }
    pthread_mutex_init(&h.mu, NULL);
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (uint64_t i = 0; i < pending; i++)
        heap_add(&h, (uint32_t)i, START + 1 + (int64_t)(rnd(&rng) % (uint64_t)SPAN));
    int64_t t1 = wall_ns();
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t k = (uint32_t)(rnd(&rng) % pending);
        int64_t at = START + 1 + (int64_t)(rnd(&rng) % (uint64_t)SPAN);
        heap_cancel(&h, k);
        heap_add(&h, k, at);
    }
    int64_t t2 = wall_ns();
    int64_t now = START, step = fire_step(pending);
    uint64_t fired = 0;
    while (fired < ops) {
        now += step;
        uint32_t id;
        while (heap_pop_due(&h, now, &id)) {
            fired++;
            heap_add(&h, id, now + 1 + (int64_t)(rnd(&rng) % (uint64_t)SPAN));
        }
    }
    int64_t t3 = wall_ns();
    out->heap_add_cancel_ns = ops ? (double)(t2 - t1) / (double)ops : 0;
    out->heap_fire_ns = fired ? (double)(t3 - t2) / (double)fired : 0;
    pthread_mutex_destroy(&h.mu);
    free(h.a);
    free(h.pos);
    return 0;
}

int seda_bench_timer_ops(uint64_t pending, uint64_t ops, seda_bench_timer_result_t *out)
{
    if (!out || pending == 0 || ops == 0 || pending > UINT32_MAX)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    int r = bench_wheel(pending, ops, out);
    if (r == 0)
        r = bench_heap(pending, ops, out);
    return r;
}
