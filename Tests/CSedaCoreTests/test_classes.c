/*
 * Strict priority classes: class 0 first, then 1, then 2; control events in
 * class 0.
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

int main(void)
{
    test_priority_classes();
    puts("classes: ok");
    return 0;
}
