/*
 * Timers on a manual clock, driven by seda_timers_poll: order, cancel,
 * wheel levels, full and closed targets, destroy, and 100k random timers.
 * Deterministic: time moves only when the test moves it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seda/clock.h"
#include "seda/queue.h"
#include "seda/timer.h"
#include "test.h"

#define MS INT64_C(1000000)
#define SEC (1000 * MS)
#define START (5 * SEC) /* the manual clock's start: not 0, to catch origin mistakes */

/* ---- a target that logs deliveries --------------------------------------- */

struct rec {
    int64_t deadline;
    uint64_t seq; /* add order */
    seda_timer_id_t id;
    int fired, cancelled, added;
};

struct log {
    const seda_clock_t *clock;
    struct rec **items;
    size_t n, cap;
    int refuse; /* nonzero: deliver returns this code instead */
};

static void log_init(struct log *l, const seda_clock_t *clock, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->clock = clock;
    l->cap = cap;
    l->items = calloc(cap, sizeof *l->items);
    CHECK(l->items != NULL);
}

static int log_deliver(void *target, void *event)
{
    struct log *l = target;
    struct rec *r = event;
    if (l->refuse)
        return l->refuse;
    /* Never early. */
    CHECK(seda_clock_now(l->clock) >= r->deadline);
    CHECK_EQ(r->fired, 0);
    CHECK_EQ(r->cancelled, 0);
    if (l->n > 0) {
        /* Deadline order, FIFO among equal deadlines. */
        struct rec *p = l->items[l->n - 1];
        CHECK(p->deadline < r->deadline || (p->deadline == r->deadline && p->seq < r->seq));
    }
    CHECK(l->n < l->cap);
    l->items[l->n++] = r;
    r->fired = 1;
    return 0;
}

/* ---- undeliverable and hand-back sinks ------------------------------------ */

struct sink {
    int calls;
    void *target[16], *event[16];
    int code[16];
};

static void sink_undeliverable(void *ctx, void *target, void *event, int code)
{
    struct sink *s = ctx;
    CHECK(s->calls < 16);
    s->target[s->calls] = target;
    s->event[s->calls] = event;
    s->code[s->calls] = code;
    s->calls++;
}

static void sink_hand_back(void *ctx, void *target, void *event)
{
    sink_undeliverable(ctx, target, event, 0);
}

static void no_undeliverable(void *ctx, void *target, void *event, int code)
{
    (void)ctx, (void)target, (void)event;
    fprintf(stderr, "unexpected undeliverable timer, code %d\n", code);
    exit(1);
}

static uint64_t next_seq;

static seda_timer_id_t add_rec(seda_timers_t *t, struct log *l, struct rec *r, int64_t deadline)
{
    r->deadline = deadline;
    r->seq = next_seq++;
    r->added = 1;
    CHECK_OK(seda_timers_add_at(t, deadline, log_deliver, l, r, &r->id));
    CHECK(r->id != 0);
    return r->id;
}

static seda_timers_stats_t stats(seda_timers_t *t)
{
    seda_timers_stats_t s;
    seda_timers_stats(t, &s);
    return s;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_arguments(void)
{
    seda_clock_t *c;
    seda_timers_t *t;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_RC(seda_timers_create(NULL, c, 0, no_undeliverable, NULL), -EINVAL);
    CHECK_RC(seda_timers_create(&t, c, 0, NULL, NULL), -EINVAL);
    CHECK_RC(seda_timers_create(&t, c, -1, no_undeliverable, NULL), -EINVAL);
    CHECK_OK(seda_timers_create(&t, NULL, 0, no_undeliverable, NULL));
    CHECK(seda_timers_clock(t) == seda_clock_monotonic());
    CHECK_EQ(seda_timers_resolution(t), SEDA_TIMERS_DEFAULT_RESOLUTION_NS);
    CHECK_EQ(seda_timers_poll(t), -1); /* nothing pending */
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);

    CHECK_OK(seda_timers_create(&t, c, 250000, no_undeliverable, NULL));
    CHECK(seda_timers_clock(t) == c);
    CHECK_EQ(seda_timers_resolution(t), 250000);
    struct log l;
    log_init(&l, c, 4);
    struct rec r = { 0 };
    seda_timer_id_t id = 0;
    CHECK_RC(seda_timers_add_at(t, START, NULL, &l, &r, &id), -EINVAL);
    CHECK_RC(seda_timers_add_after(t, -1, log_deliver, &l, &r, &id), -EINVAL);
    CHECK_RC(seda_timers_add_at(NULL, START, log_deliver, &l, &r, &id), -EINVAL);
    CHECK_EQ(id, 0);
    CHECK_RC(seda_timers_cancel(t, 0, NULL), -ENOENT);
    CHECK_RC(seda_timers_cancel(t, UINT64_MAX, NULL), -ENOENT);
    CHECK_RC(seda_timers_cancel(t, (UINT64_C(1) << 32) | 12345, NULL), -ENOENT);
    CHECK_RC(seda_timers_cancel_all(t, NULL, NULL), -EINVAL);
    CHECK_RC(seda_timers_start(NULL, NULL), -EINVAL);
    /* add_after on a manual clock: deadline = now + delay. */
    r.seq = next_seq++;
    r.deadline = START + 3 * MS;
    CHECK_OK(seda_timers_add_after(t, 3 * MS, log_deliver, &l, &r, NULL));
    CHECK_EQ(seda_timers_poll(t), 3 * MS);
    CHECK_OK(seda_clock_manual_advance(c, 3 * MS));
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(l.n, 1);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    free(l.items);
    seda_clock_destroy(c);
}

static void test_order(void)
{
    seda_clock_t *c;
    seda_timers_t *t;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    struct log l;
    log_init(&l, c, 64);
    struct rec r[12] = { { 0 } };
    /* Added out of order, with ties (r[1], r[4], r[7] at 20 ms; r[2], r[9] at
     * 20.5 ms, inside the same tick as the next boundary), and deadlines that
     * are not on a tick boundary. */
    const double d[12] = { 30, 20, 20.5, 5, 20, 0.25, 40, 20, 1, 20.5, 30, 2 };
    for (int i = 0; i < 12; i++)
        add_rec(t, &l, &r[i], START + (int64_t)(d[i] * MS));
    CHECK_EQ(stats(t).pending, 12);

    /* At START nothing is due (0.25 ms lies in the first tick). */
    int64_t wait = seda_timers_poll(t);
    CHECK_EQ(l.n, 0);
    CHECK_EQ(wait, MS); /* when 0.25 ms falls due: the 1 ms boundary */
    /* 0.25 ms: still before the first tick boundary, so not due yet. */
    CHECK_OK(seda_clock_manual_set(c, START + MS / 4));
    seda_timers_poll(t);
    CHECK_EQ(l.n, 0);
    /* 1 ms: r[5] (0.25 ms, due at the 1 ms boundary) and r[8] (1 ms). */
    CHECK_OK(seda_clock_manual_set(c, START + MS));
    seda_timers_poll(t);
    CHECK_EQ(l.n, 2);
    CHECK(l.items[0] == &r[5] && l.items[1] == &r[8]);
    /* Jump to 25 ms: 2, 5, then the three 20 ms ties in add order, then the
     * two 20.5 ms ones (tick 21). */
    CHECK_OK(seda_clock_manual_set(c, START + 25 * MS));
    wait = seda_timers_poll(t);
    CHECK_EQ(wait, 5 * MS);
    int want1[] = { 5, 8, 11, 3, 1, 4, 7, 2, 9 };
    CHECK_EQ(l.n, 9);
    for (int i = 0; i < 9; i++)
        CHECK(l.items[i] == &r[want1[i]]);
    /* One ns before 30 ms: nothing more. */
    CHECK_OK(seda_clock_manual_set(c, START + 30 * MS - 1));
    CHECK_EQ(seda_timers_poll(t), 1);
    CHECK_EQ(l.n, 9);
    CHECK_OK(seda_clock_manual_set(c, START + 100 * MS));
    CHECK_EQ(seda_timers_poll(t), -1);
    int want2[] = { 0, 10, 6 };
    CHECK_EQ(l.n, 12);
    for (int i = 0; i < 3; i++)
        CHECK(l.items[9 + i] == &r[want2[i]]);
    seda_timers_stats_t s = stats(t);
    CHECK_EQ(s.pending, 0);
    CHECK_EQ(s.fired, 12);
    CHECK_EQ(s.added, 12);
    CHECK_EQ(s.retries, 0);

    /* A deadline already past is due at the next poll, and poll says so. */
    struct rec late = { 0 }, later = { 0 };
    add_rec(t, &l, &late, START + 50 * MS);
    add_rec(t, &l, &later, START + 99 * MS);
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK(l.items[12] == &late && l.items[13] == &later);

    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    free(l.items);
    seda_clock_destroy(c);
}

static void test_cancel(void)
{
    seda_clock_t *c;
    seda_timers_t *t;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    struct log l;
    log_init(&l, c, 64);
    struct rec r[4] = { { 0 } };
    for (int i = 0; i < 4; i++)
        add_rec(t, &l, &r[i], START + (i + 1) * 10 * MS);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            CHECK(r[i].id != r[j].id);

    void *ev = NULL;
    CHECK_OK(seda_timers_cancel(t, r[1].id, &ev));
    CHECK(ev == &r[1]);
    CHECK_RC(seda_timers_cancel(t, r[1].id, &ev), -ENOENT); /* twice */
    CHECK_OK(seda_timers_cancel(t, r[3].id, NULL));         /* no event wanted */
    CHECK_EQ(stats(t).pending, 2);
    CHECK_EQ(stats(t).cancelled, 2);

    CHECK_OK(seda_clock_manual_set(c, START + 50 * MS));
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(l.n, 2);
    CHECK(l.items[0] == &r[0] && l.items[1] == &r[2]);
    ev = NULL;
    CHECK_RC(seda_timers_cancel(t, r[0].id, &ev), -ENOENT); /* fired */
    CHECK(ev == NULL);

    /* Entries are reused, ids are not: churn one slot many times. */
    seda_timer_id_t prev = 0, first = 0;
    for (int i = 0; i < 1000; i++) {
        struct rec x = { 0 };
        seda_timer_id_t id = add_rec(t, &l, &x, START + SEC);
        CHECK(id != prev && id != first && id != r[0].id && id != r[1].id);
        if (!first)
            first = id;
        CHECK_OK(seda_timers_cancel(t, id, &ev));
        CHECK(ev == &x);
        CHECK_RC(seda_timers_cancel(t, id, &ev), -ENOENT);
        prev = id;
    }
    CHECK_RC(seda_timers_cancel(t, first, &ev), -ENOENT);
    CHECK_EQ(stats(t).pending, 0);
    CHECK_EQ(seda_timers_poll(t), -1);

    /* A timer in the first tick and one on the due list can be cancelled too. */
    struct rec a = { 0 }, b = { 0 };
    add_rec(t, &l, &a, START + 51 * MS);
    add_rec(t, &l, &b, START); /* past: due list */
    CHECK_OK(seda_timers_cancel(t, a.id, NULL));
    CHECK_OK(seda_timers_cancel(t, b.id, &ev));
    CHECK(ev == &b);
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(l.n, 2);

    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    free(l.items);
    seda_clock_destroy(c);
}

static void test_cancel_all_and_destroy(void)
{
    seda_clock_t *c;
    seda_timers_t *t;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    struct log l;
    log_init(&l, c, 64);
    struct rec r[6] = { { 0 } };
    int64_t d[6] = { 3 * SEC, 7 * MS, 100 * SEC, 7 * MS, 0, 70 * MS };
    for (int i = 0; i < 6; i++)
        add_rec(t, &l, &r[i], START + d[i]);
    struct sink s = { 0 };
    CHECK_RC(seda_timers_cancel_all(t, NULL, &s), -EINVAL);
    CHECK_EQ(seda_timers_cancel_all(t, sink_hand_back, &s), 6);
    /* In deadline order, ties in add order, with their targets. */
    int want[6] = { 4, 1, 3, 5, 0, 2 };
    CHECK_EQ(s.calls, 6);
    for (int i = 0; i < 6; i++) {
        CHECK(s.event[i] == &r[want[i]]);
        CHECK(s.target[i] == &l);
    }
    for (int i = 0; i < 6; i++)
        CHECK_RC(seda_timers_cancel(t, r[i].id, NULL), -ENOENT);
    seda_timers_stats_t st = stats(t);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.cancelled, 6);
    CHECK_EQ(seda_timers_cancel_all(t, sink_hand_back, &s), 0);
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_OK(seda_clock_manual_advance(c, 200 * SEC));
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(l.n, 0); /* none fired */

    /* Destroy hands back what is pending, in deadline order. */
    struct rec p[3] = { { 0 } };
    add_rec(t, &l, &p[0], START + 300 * SEC);
    add_rec(t, &l, &p[1], START + 250 * SEC);
    add_rec(t, &l, &p[2], START); /* due list */
    struct sink s2 = { 0 };
    CHECK_EQ(seda_timers_destroy(t, sink_hand_back, &s2), 3);
    CHECK_EQ(s2.calls, 3);
    CHECK(s2.event[0] == &p[2] && s2.event[1] == &p[1] && s2.event[2] == &p[0]);

    /* With no hand_back, destroy still reports how many were pending. */
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    add_rec(t, &l, &p[0], START + 300 * SEC);
    add_rec(t, &l, &p[1], START + 300 * SEC);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 2);

    free(l.items);
    seda_clock_destroy(c);
}

static void test_levels(void)
{
    /* One timer per wheel level and on level edges (ticks of 1 ms: level 1
     * starts at 64 ms, level 2 at 4.096 s, level 3 at 4.4 min, level 4 at
     * 4.7 h, level 5 at 12.4 days). */
    seda_clock_t *c;
    seda_timers_t *t;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    struct log l;
    log_init(&l, c, 64);
    const int64_t d[] = {
        1 * MS,
        63 * MS,
        64 * MS,
        65 * MS,
        70 * MS,
        4095 * MS,
        4096 * MS,
        4097 * MS,
        5 * SEC,
        262144 * MS,
        10 * 60 * SEC,
        3 * 86400 * SEC,
        ((INT64_C(1) << 50) / MS) * MS, /* 13 days */
        20 * 86400 * SEC,
        ((INT64_MAX - START) / MS - 1) * MS, /* 292 years: the top levels */
    };
    enum { N = sizeof d / sizeof d[0] };
    struct rec r[N];
    memset(r, 0, sizeof r);
    /* Added from the latest down, so add order differs from deadline order. */
    for (int i = N; i-- > 0;)
        add_rec(t, &l, &r[i], START + d[i]);
    for (int i = 0; i < N; i++) {
        int64_t when = START + d[i];
        CHECK_OK(seda_clock_manual_set(c, when - 1));
        int64_t wait = seda_timers_poll(t);
        CHECK_EQ(l.n, i); /* never early */
        /* Poll's answer is never later than the next deadline. */
        CHECK(wait >= 0 && wait <= 1);
        CHECK_OK(seda_clock_manual_set(c, when));
        wait = seda_timers_poll(t);
        CHECK_EQ(l.n, i + 1);
        CHECK(l.items[i] == &r[i]);
        if (i + 1 < N)
            CHECK(wait > 0 && wait <= d[i + 1] - d[i]);
        else
            CHECK_EQ(wait, -1);
    }
    CHECK_EQ(stats(t).fired, N);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    seda_clock_destroy(c);

    /* The same deadlines reached by one big jump each time, from a clock
     * that has not been polled for a while, with a coarse resolution. */
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, 7 * MS + 3, no_undeliverable, NULL));
    free(l.items);
    log_init(&l, c, 64);
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        add_rec(t, &l, &r[i], START + d[i]);
    CHECK_OK(seda_clock_manual_set(c, START + 20 * 86400 * SEC + 8 * MS));
    CHECK(seda_timers_poll(t) > 0);
    CHECK_EQ(l.n, N - 1);
    for (int i = 0; i < N - 1; i++)
        CHECK(l.items[i] == &r[i]);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 1);
    free(l.items);
    seda_clock_destroy(c);
}

static void fill_item_drop(void *ctx, void *ev)
{
    (void)ctx, (void)ev;
}

static void test_full_target(void)
{
    seda_clock_t *c;
    seda_timers_t *t;
    seda_queue_t *q, *r;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    CHECK_OK(seda_queue_create(&q, 2, NULL));
    CHECK_OK(seda_queue_create(&r, 8, NULL));
    int fill1, fill2, a, b, cc, d;
    CHECK_OK(seda_queue_enqueue(q, &fill1));
    CHECK_OK(seda_queue_enqueue(q, &fill2));
    seda_timer_id_t ida, idb;
    CHECK_OK(seda_timers_add_at(t, START + 10 * MS, seda_timer_deliver_to_queue, q, &a, &ida));
    CHECK_OK(seda_timers_add_at(t, START + 10 * MS, seda_timer_deliver_to_queue, r, &cc, NULL));
    CHECK_OK(seda_timers_add_at(t, START + 11 * MS, seda_timer_deliver_to_queue, q, &b, &idb));
    CHECK_OK(seda_clock_manual_set(c, START + 11 * MS));

    /* a finds q full; b waits behind it (never overtakes); cc goes to r. */
    CHECK_EQ(seda_timers_poll(t), MS); /* retry one resolution later */
    seda_timers_stats_t s = stats(t);
    CHECK_EQ(s.fired, 1);
    CHECK_EQ(s.retries, 2);
    CHECK_EQ(s.pending, 2);
    void *ev;
    CHECK_OK(seda_queue_dequeue(r, &ev));
    CHECK(ev == &cc);
    /* Still full: retried at every poll, never dropped. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ(seda_timers_poll(t), MS);
    CHECK_EQ(stats(t).retries, 12);
    CHECK_EQ(stats(t).pending, 2);

    /* Room for one: a goes in, b finds q full again. */
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == &fill1);
    CHECK_EQ(seda_timers_poll(t), MS);
    s = stats(t);
    CHECK_EQ(s.fired, 2);
    CHECK_EQ(s.retries, 13);
    CHECK_RC(seda_timers_cancel(t, ida, NULL), -ENOENT); /* delivered */

    /* Room for all: b goes in, in order after a. */
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == &fill2);
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == &a);
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == &b);
    CHECK_EQ(stats(t).fired, 3);

    /* A timer waiting for retry is pending: it can be cancelled. */
    CHECK_OK(seda_queue_enqueue(q, &fill1));
    CHECK_OK(seda_queue_enqueue(q, &fill2));
    CHECK_OK(seda_timers_add_at(t, START + 11 * MS, seda_timer_deliver_to_queue, q, &d, &idb));
    CHECK_EQ(seda_timers_poll(t), MS);
    CHECK_EQ(stats(t).retries, 14);
    CHECK_OK(seda_timers_cancel(t, idb, &ev));
    CHECK(ev == &d);
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(seda_queue_size(q), 2);

    s = stats(t);
    CHECK_EQ(s.pending, 0);
    CHECK_EQ(s.undeliverable, 0);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    seda_queue_destroy(q, fill_item_drop, NULL);
    seda_queue_destroy(r, NULL, NULL);
    seda_clock_destroy(c);
}

static int refuse_enodev(void *target, void *event)
{
    (void)target, (void)event;
    return -ENODEV;
}

static void test_closed_target(void)
{
    seda_clock_t *c;
    seda_timers_t *t;
    seda_queue_t *q;
    struct sink s = { 0 };
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, MS, sink_undeliverable, &s));
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    int e1, e2, e3;
    seda_timer_id_t id1;
    CHECK_OK(seda_timers_add_at(t, START + 2 * MS, seda_timer_deliver_to_queue, q, &e1, &id1));
    CHECK_OK(seda_timers_add_at(t, START + 3 * MS, refuse_enodev, &s, &e3, NULL));
    CHECK_OK(seda_timers_add_at(t, START + 4 * MS, seda_timer_deliver_to_queue, q, &e2, NULL));
    CHECK_OK(seda_queue_close(q));
    CHECK_OK(seda_clock_manual_set(c, START + 4 * MS));
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(s.calls, 3);
    CHECK(s.target[0] == q && s.event[0] == &e1 && s.code[0] == -EPIPE);
    CHECK(s.target[1] == &s && s.event[1] == &e3 && s.code[1] == -ENODEV);
    CHECK(s.target[2] == q && s.event[2] == &e2 && s.code[2] == -EPIPE);
    seda_timers_stats_t st = stats(t);
    CHECK_EQ(st.undeliverable, 3);
    CHECK_EQ(st.fired, 0);
    CHECK_EQ(st.pending, 0);
    CHECK_RC(seda_timers_cancel(t, id1, NULL), -ENOENT);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    seda_queue_destroy(q, NULL, NULL);
    seda_clock_destroy(c);
}

/* A periodic timer: its deliver function re-arms it. */
struct periodic {
    seda_timers_t *t;
    const seda_clock_t *clock;
    int64_t next, period;
    int count, limit;
    int64_t at[16];
};

static int periodic_deliver(void *target, void *event)
{
    struct periodic *p = target;
    (void)event;
    int64_t now = seda_clock_now(p->clock);
    CHECK(now >= p->next);
    p->at[p->count++] = now;
    if (p->count < p->limit) {
        p->next += p->period;
        CHECK_OK(seda_timers_add_at(p->t, p->next, periodic_deliver, p, NULL, NULL));
    }
    return 0;
}

static void test_periodic_rearm(void)
{
    seda_clock_t *c;
    struct periodic p = { 0 };
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&p.t, c, MS, no_undeliverable, NULL));
    p.clock = c;
    p.period = 10 * MS;
    p.next = START + p.period;
    p.limit = 10;
    CHECK_OK(seda_timers_add_at(p.t, p.next, periodic_deliver, &p, NULL, NULL));
    while (seda_timers_poll(p.t) >= 0)
        CHECK_OK(seda_clock_manual_advance(c, MS));
    CHECK_EQ(p.count, 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(p.at[i], START + (i + 1) * p.period);
    CHECK_EQ(seda_timers_destroy(p.t, NULL, NULL), 0);
    seda_clock_destroy(c);
}

/* ---- many random timers ------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1du;
}

static int by_deadline(const void *a, const void *b)
{
    const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;
    return x->deadline < y->deadline ? -1 : x->deadline > y->deadline;
}

struct plan {
    struct rec *r;
    int64_t add_at; /* when the test adds it (<= deadline) */
};

static int by_add_time(const void *a, const void *b)
{
    const struct plan *x = a, *y = b;
    return x->add_at < y->add_at ? -1 : x->add_at > y->add_at;
}

/*
 * n timers with deadlines over `span`, some tied, added progressively; the
 * clock moves in random steps (mostly short, sometimes long jumps); random
 * cancels. After every poll, every timer whose tick has been reached has
 * fired or been cancelled; the log checks order and never-early throughout.
 */
static void random_run(size_t n, int64_t res, int64_t span, int64_t big_step)
{
    seda_clock_t *c;
    seda_timers_t *t;
    CHECK_OK(seda_clock_manual_create(&c, START));
    CHECK_OK(seda_timers_create(&t, c, res, no_undeliverable, NULL));
    struct log l;
    log_init(&l, c, n);
    struct rec *r = calloc(n, sizeof *r);
    struct rec **sorted = calloc(n, sizeof *sorted);
    struct plan *plan = calloc(n, sizeof *plan);
    CHECK(r && sorted && plan);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = rnd();
        if (i > 0 && x % 10 == 0)
            r[i].deadline = r[rnd() % i].deadline; /* a tie */
        else if (x % 10 == 1)
            r[i].deadline = START + (int64_t)(rnd() % (uint64_t)(span / res)) * res; /* on a tick */
        else
            r[i].deadline = START + (int64_t)(rnd() % (uint64_t)span);
        plan[i].r = &r[i];
        /* Half are there from the start, half are added along the way. */
        plan[i].add_at =
            x % 2 ? START : START + (int64_t)(rnd() % (uint64_t)(r[i].deadline - START + 1));
        sorted[i] = &r[i];
    }
    qsort(sorted, n, sizeof *sorted, by_deadline);
    qsort(plan, n, sizeof *plan, by_add_time);

    size_t next_add = 0, checked = 0, cancelled = 0, polls = 0;
    int64_t now = START;
    for (;;) {
        int64_t step = rnd() % 100 == 0 ? (int64_t)(rnd() % (uint64_t)big_step)
                                        : (int64_t)(rnd() % (uint64_t)(3 * res));
        int64_t to = now + step;
        /* Add what is planned up to `to`: all deadlines are >= now. */
        while (next_add < n && plan[next_add].add_at <= to) {
            struct rec *x = plan[next_add++].r;
            CHECK(x->deadline >= now);
            add_rec(t, &l, x, x->deadline);
        }
        /* Cancel a few random added ones. */
        for (int k = 0; k < 2 && next_add > 0; k++) {
            struct rec *x = plan[rnd() % next_add].r;
            void *ev = NULL;
            int rc = seda_timers_cancel(t, x->id, &ev);
            if (rc == 0) {
                CHECK(!x->fired && !x->cancelled);
                CHECK(ev == x);
                x->cancelled = 1;
                cancelled++;
            } else {
                CHECK_RC(rc, -ENOENT);
                CHECK(x->fired || x->cancelled);
            }
        }
        CHECK_OK(seda_clock_manual_set(c, to));
        now = to;
        int64_t wait = seda_timers_poll(t);
        polls++;
        /* Everything whose tick has been reached is done. */
        int64_t reached = START + (now - START) / res * res;
        while (checked < n && sorted[checked]->deadline <= reached) {
            CHECK(sorted[checked]->added);
            CHECK(sorted[checked]->fired || sorted[checked]->cancelled);
            checked++;
        }
        /* ... and nothing else has fired (the log checks order; this checks
         * that the next one in line has not fired early). */
        if (checked < n)
            CHECK(!sorted[checked]->fired);
        if (wait < 0 && next_add == n)
            break;
        CHECK(wait >= -1);
    }
    CHECK_EQ(checked, n);
    CHECK_EQ(l.n + cancelled, n);
    seda_timers_stats_t s = stats(t);
    CHECK_EQ(s.added, n);
    CHECK_EQ(s.fired, l.n);
    CHECK_EQ(s.cancelled, cancelled);
    CHECK_EQ(s.pending, 0);
    CHECK(polls > 100);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    free(r);
    free(sorted);
    free(plan);
    free(l.items);
    seda_clock_destroy(c);
}

/* ---- a deadline at the end of the clock ----------------------------------- */

/* INT64_MAX is a time a manual clock can reach. A timer due then used never
 * to fire (its tick lay past the last tick the clock can reach) while the
 * facility reported work due at once, so its thread spun at 100% CPU. */
static void test_deadline_at_clock_end(int64_t res, int64_t start)
{
    seda_clock_t *clock;
    CHECK_OK(seda_clock_manual_create(&clock, start));
    seda_timers_t *t;
    CHECK_OK(seda_timers_create(&t, clock, res, no_undeliverable, NULL));
    struct log l;
    log_init(&l, clock, 4);
    struct rec r = { 0 };
    add_rec(t, &l, &r, INT64_MAX);
    /* Not due: the next work is in the future, never "now". */
    CHECK(seda_timers_poll(t) > 0);
    CHECK_OK(seda_clock_manual_set(clock, INT64_MAX - 1));
    CHECK(seda_timers_poll(t) > 0);
    CHECK_EQ(r.fired, 0);
    CHECK_OK(seda_clock_manual_set(clock, INT64_MAX));
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(r.fired, 1);
    CHECK_EQ(stats(t).fired, 1);
    /* Added once the clock has ended: due at once. */
    struct rec r2 = { 0 };
    add_rec(t, &l, &r2, INT64_MAX);
    CHECK_EQ(seda_timers_poll(t), -1);
    CHECK_EQ(r2.fired, 1);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    free(l.items);
    seda_clock_destroy(clock);
}

int main(void)
{
    test_deadline_at_clock_end(MS, START); /* no tick boundary at INT64_MAX */
    test_deadline_at_clock_end(1, START);  /* a boundary at every nanosecond */
    test_deadline_at_clock_end(7 * MS, 0);
    test_arguments();
    test_order();
    test_cancel();
    test_cancel_all_and_destroy();
    test_levels();
    test_full_target();
    test_closed_target();
    test_periodic_rearm();
    /* 100k timers over a minute, 1 ms ticks, jumps up to 5 s. */
    random_run(100000, MS, 60 * SEC, 5 * SEC);
    /* Fine ticks (1 us) over three days: the upper levels, long jumps. */
    random_run(20000, 1000, 3 * 86400 * SEC, 3600 * SEC);
    return 0;
}
