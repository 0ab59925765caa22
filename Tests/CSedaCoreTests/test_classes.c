/*
 * Strict priority classes: class 0 first, then 1, then 2; control events in
 * class 0; the timed and batch enqueues into a chosen class; the queue's
 * capacity as rounded.
 */
#include "runtime_test.h"

/* ---- strict priority classes: class 0 first, then 1, then 2 --------------- */

struct order_ctx {
    struct gate_ctx gate;
    uint64_t seen[64];
    _Atomic uint64_t n;
};

static int record_order(void *ctx, void **events, size_t count)
{
    struct order_ctx *o = ctx;
    atomic_store(&o->gate.entered, 1);
    while (!atomic_load(&o->gate.open))
        sched_yield();
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        o->seen[atomic_load(&o->n) + i] = e->n;
        ev_free(e);
    }
    atomic_fetch_add(&o->n, count);
    return 0;
}

static void test_priority_classes(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct order_ctx o = { 0 };
    seda_stage_options_t so = { .name = "prio",
                                .handler = record_order,
                                .ctx = &o,
                                .drop = drop_cb,
                                .thread_manager = SEDA_THREADS_DEDICATED,
                                .batch_max = 1,
                                .queue_capacity = 16,
                                .classes = 3 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &so, &s));
    struct ev *wrong = ev_new(99, 0);
    CHECK_RC(seda_stage_enqueue_class(s, wrong, 3), -EINVAL);
    free(wrong);                                     /* not counted: never entered the stage */
    CHECK_OK(seda_stage_enqueue(s, ev_new(100, 0))); /* holds the thread at the gate */
    WAIT_UNTIL(atomic_load(&o.gate.entered));
    /* n = 10 * class + i; plain enqueues are class 2, control is class 0. */
    for (uint32_t i = 0; i < 3; i++)
        for (uint32_t c = 3; c-- > 0;)
            CHECK_OK(seda_stage_enqueue_class(s, ev_new(10 * c + i, 0), c));
    CHECK_OK(seda_stage_enqueue(s, ev_new(23, 0)));
    CHECK_OK(seda_stage_enqueue_control(s, ev_new(3, 0)));
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.queue_length, 11);
    atomic_store(&o.gate.open, 1);
    WAIT_UNTIL(atomic_load(&o.n) == 12);
    uint64_t want[12] = { 100, 0, 1, 2, 3, 10, 11, 12, 20, 21, 22, 23 };
    for (int i = 0; i < 12; i++)
        CHECK_EQ(o.seen[i], want[i]);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 12);
}

/* ---- timed and batch enqueues into a class --------------------------------- */

struct waiter {
    seda_stage_t *stage;
    _Atomic int result;
};

static void *wait_for_room_in_class_1(void *p)
{
    struct waiter *w = p;
    struct ev *e = ev_new(14, 0);
    int r = seda_stage_enqueue_wait_class(w->stage, e, 1, -1);
    if (r < 0)
        ev_free(e);
    atomic_store(&w->result, r);
    return NULL;
}

static void test_class_aware_enqueues(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct order_ctx o = { 0 };
    seda_stage_options_t so = { .name = "prio",
                                .handler = record_order,
                                .ctx = &o,
                                .drop = drop_cb,
                                .thread_manager = SEDA_THREADS_DEDICATED,
                                .batch_max = 1,
                                .queue_capacity = 3, /* rounded up to 4 per class */
                                .classes = 3 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &so, &s));
    CHECK_EQ(seda_stage_queue_capacity(s), 4);
    /* A class the stage does not have: refused, nothing enqueued. */
    struct ev *wrong[2] = { ev_new(98, 0), ev_new(99, 0) };
    CHECK_RC(seda_stage_enqueue_wait_class(s, wrong[0], 3, 0), -EINVAL);
    CHECK_RC(seda_stage_enqueue_many_class(s, (void *const *)wrong, 2, 3), -EINVAL);
    CHECK_RC(seda_stage_enqueue_many_class(s, (void *const *)wrong, 0, 3), -EINVAL);
    free(wrong[0]);
    free(wrong[1]);

    CHECK_OK(seda_stage_enqueue(s, ev_new(100, 0))); /* holds the thread at the gate */
    WAIT_UNTIL(atomic_load(&o.gate.entered));
    /* n = 10 * class + i: batches into classes 2 and 0, a timed one into 1. */
    struct ev *low[2] = { ev_new(20, 0), ev_new(21, 0) };
    CHECK_RC(seda_stage_enqueue_many_class(s, (void *const *)low, 2, 2), 2);
    struct ev *high[2] = { ev_new(0, 0), ev_new(1, 0) };
    CHECK_RC(seda_stage_enqueue_many_class(s, (void *const *)high, 2, 0), 2);
    CHECK_OK(seda_stage_enqueue_wait_class(s, ev_new(10, 0), 1, 0));
    /* More than a class's queue can ever hold: -EINVAL, not a wait. */
    struct ev *many[5];
    for (int i = 0; i < 5; i++)
        many[i] = ev_new(90, 0);
    CHECK_RC(seda_stage_enqueue_many_class(s, (void *const *)many, 5, 1), -EINVAL);
    for (int i = 0; i < 5; i++)
        free(many[i]);
    struct ev *mid[3] = { ev_new(11, 0), ev_new(12, 0), ev_new(13, 0) };
    CHECK_RC(seda_stage_enqueue_many_class(s, (void *const *)mid, 3, 1), 3);
    /* Class 1 is full, class 0 is not: a timed enqueue waits on its own
     * class's queue only. */
    struct ev *late = ev_new(15, 0);
    CHECK_RC(seda_stage_enqueue_wait_class(s, late, 1, 0), -ETIMEDOUT);
    free(late);
    CHECK_OK(seda_stage_enqueue_wait_class(s, ev_new(2, 0), 0, 0));
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.queue_length, 9);
    CHECK_EQ(st.rejected_full, 1);
    /* A producer waiting for room in class 1 gets in once the handler
     * takes class 1's events. */
    struct waiter w = { .stage = s, .result = 1 };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_for_room_in_class_1, &w) == 0);
    atomic_store(&o.gate.open, 1);
    pthread_join(t, NULL);
    CHECK_OK(atomic_load(&w.result));
    WAIT_UNTIL(atomic_load(&o.n) == 11);
    /* Class by class; 14 entered class 1 at some point after 10 left it. */
    uint64_t want[10] = { 100, 0, 1, 2, 10, 11, 12, 13, 20, 21 };
    for (int i = 0, j = 0; i < 11; i++) {
        if (o.seen[i] == 14) {
            CHECK(i > 4); /* after 10 */
            continue;
        }
        CHECK_EQ(o.seen[i], want[j++]);
    }
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 11);
}

int main(void)
{
    test_priority_classes();
    test_class_aware_enqueues();
    puts("classes: ok");
    return 0;
}
