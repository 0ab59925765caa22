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

static void run_codel(int discipline, int64_t interval_ns, uint64_t *out_handled,
                      uint64_t *out_dropped, uint64_t *out_controls)
{
    reset_counts();
    struct codel_ctx c = { 0 };
    CHECK_OK(seda_clock_manual_create(&c.clock, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = c.clock };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    seda_stage_options_t o = { .name = "codel",
                               .handler = takes_10ms,
                               .ctx = &c,
                               .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .batch_max = 1,
                               .queue_capacity = 512,
                               .discipline = discipline,
                               .codel_target_ns = 5000000,
                               .codel_interval_ns = interval_ns };
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
    run_codel(SEDA_DISCIPLINE_FIFO, 100000000, &handled, &dropped, &controls);
    CHECK_EQ(dropped, 0);
    CHECK_EQ(handled, 200);
    run_codel(SEDA_DISCIPLINE_CODEL, 100000000, &handled, &dropped, &controls);
    CHECK(dropped > 0);
    CHECK_EQ(controls, 10); /* every control event was handled */
    /* Nothing is dropped before the waiting time has been above target for
     * a whole interval: the first ~10 events (100 ms at 10 ms) all run. */
    CHECK(handled >= 10);
    /* An interval as long as the clock allows: never a whole interval above
     * target, so nothing is dropped (bug: now + interval overflowed and
     * CoDel dropped at once). */
    run_codel(SEDA_DISCIPLINE_CODEL, INT64_MAX, &handled, &dropped, &controls);
    CHECK_EQ(dropped, 0);
    CHECK_EQ(handled, 200);
}

/* ---- the stamp is "entered this queue", not "the sender's batch began" ---- */

/* A sender doing 10 ms of work per event (on the manual clock) before it
 * forwards the event, one at a time: the receiving CoDel stage never holds
 * more than one event, which waits for nothing, so nothing may be dropped and
 * no queueing delay may be recorded. With the sender's batch start as the
 * stamp, its 10 ms of work counted as waiting time downstream: CoDel dropped
 * and reported 10 ms delays. */
struct stamp_ctx {
    seda_clock_t *clock;
    seda_stage_t *next;
    uint64_t sent;
    _Atomic uint64_t settled, dropped;
};

static int work_then_forward(void *ctx, void **events, size_t count)
{
    struct stamp_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        /* One event downstream at a time: wait until the last one settled. */
        while (atomic_load(&c->settled) < c->sent)
            sched_yield();
        seda_clock_manual_advance(c->clock, 10000000);
        c->sent++;
        CHECK_OK(seda_stage_enqueue(c->next, events[i]));
    }
    return 0;
}

static int settle(void *ctx, void **events, size_t count)
{
    struct stamp_ctx *c = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(&c->settled, count);
    return 0;
}

static void settle_drop(void *ctx, void *event)
{
    struct stamp_ctx *c = ctx;
    ev_free(event);
    atomic_fetch_add(&c->dropped, 1);
    atomic_fetch_add(&c->settled, 1);
}

static void test_stamp_is_enqueue_time(int sender_manager)
{
    reset_counts();
    struct stamp_ctx c = { 0 };
    CHECK_OK(seda_clock_manual_create(&c.clock, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = c.clock, .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    /* A dedicated receiver: a shared one could sit in the sender's run-next
     * slot while the sender waits for it. */
    seda_stage_options_t o = { .name = "codel",
                               .handler = settle,
                               .ctx = &c,
                               .drop = settle_drop,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .batch_max = 1,
                               .queue_capacity = 2,
                               .discipline = SEDA_DISCIPLINE_CODEL,
                               .codel_target_ns = 5000000,
                               .codel_interval_ns = 100000000 };
    CHECK_OK(seda_stage_create(rt, &o, &c.next));
    seda_stage_t *work = make_stage(rt, "work", work_then_forward, &c, sender_manager, 1, 1);
    enum { N = 200 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(work, ev_new(i, 0));
    WAIT_UNTIL(atomic_load(&c.settled) == N);
    seda_stage_stats_t st;
    seda_stage_stats(c.next, &st);
    CHECK_EQ(atomic_load(&c.dropped), 0);
    CHECK_EQ(st.dropped, 0);
    CHECK_EQ(st.processed, N);
    CHECK(st.queue_delay.max_ns < 5000000);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(work);
    seda_stage_release(c.next);
    seda_runtime_destroy(rt);
    seda_clock_destroy(c.clock);
    CHECK_EQ(atomic_load(&freed), N);
}

int main(void)
{
    test_stamp_is_enqueue_time(SEDA_THREADS_DEDICATED);
    test_stamp_is_enqueue_time(SEDA_THREADS_SHARED);
    test_codel();
    puts("codel: ok");
    return 0;
}
