/*
 * The CoDel queue discipline under overload, on a manual clock: drops, but
 * never a control event.
 */
#include "runtime_test.h"

/* ---- CoDel under overload, on a manual clock: drops, but never control ---- */

struct codel_ctx {
    seda_clock_t *clock;
    _Atomic uint64_t handled, controls;
};

static int takes_10ms(void *ctx, void **events, size_t count)
{
    struct codel_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->ttl == -1)
            atomic_fetch_add(&c->controls, 1);
        ev_free(e);
    }
    seda_clock_manual_advance(c->clock, 10000000 * (int64_t)count);
    atomic_fetch_add(&c->handled, count);
    return 0;
}

static void run_codel(int discipline, uint64_t *out_handled, uint64_t *out_dropped, uint64_t *out_controls)
{
    reset_counts();
    struct codel_ctx c = { 0 };
    CHECK_OK(seda_clock_manual_create(&c.clock, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = c.clock };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    seda_stage_options_t o = { .name = "codel", .handler = takes_10ms, .ctx = &c, .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_DEDICATED, .batch_max = 1,
                               .queue_capacity = 512, .discipline = discipline,
                               .codel_target_ns = 5000000, .codel_interval_ns = 100000000 };
    seda_stage_t *s;
    void *batch[200];
    for (int i = 0; i < 200; i++)
        batch[i] = ev_new((uint64_t)i, i % 20 == 0 ? -1 : 0); /* every 20th: control */
    CHECK_OK(seda_stage_create(rt, &o, &s));
    /* 200 events at once, 10 ms each: a 2 s backlog against a 5 ms target. */
    for (int i = 0; i < 200; i++) {
        if (((struct ev *)batch[i])->ttl == -1)
            CHECK_OK(seda_stage_enqueue_control(s, batch[i]));
        else
            CHECK_OK(seda_stage_enqueue(s, batch[i]));
    }
    WAIT_UNTIL(atomic_load(&c.handled) + atomic_load(&dropped) == 200);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.dropped, atomic_load(&dropped));
    CHECK_EQ(st.processed + st.dropped, 200);
    *out_handled = atomic_load(&c.handled);
    *out_dropped = st.dropped;
    *out_controls = atomic_load(&c.controls);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    seda_clock_destroy(c.clock);
    CHECK_EQ(atomic_load(&freed), 200);
}

static void test_codel(void)
{
    uint64_t handled, dropped, controls;
    run_codel(SEDA_DISCIPLINE_FIFO, &handled, &dropped, &controls);
    CHECK_EQ(dropped, 0);
    CHECK_EQ(handled, 200);
    run_codel(SEDA_DISCIPLINE_CODEL, &handled, &dropped, &controls);
    CHECK(dropped > 0);
    CHECK_EQ(controls, 10); /* every control event was handled */
    /* Nothing is dropped before the waiting time has been above target for
     * a whole interval: the first ~10 events (100 ms at 10 ms) all run. */
    CHECK(handled >= 10);
}

int main(void)
{
    test_codel();
    puts("codel: ok");
    return 0;
}
