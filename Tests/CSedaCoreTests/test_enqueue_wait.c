/*
 * seda_stage_enqueue_wait: waiting for room from outside; on the shared
 * threads it enqueues when there is room and refuses only the wait.
 */
#include "runtime_test.h"

/* ---- waiting for room: from outside yes, on the shared threads never ------- */

static int try_wait_enqueue(void *ctx, void **events, size_t count)
{
    struct destroyer_ctx *d = ctx; /* victim: where to enqueue */
    atomic_store(&d->result, seda_stage_enqueue_wait(d->victim, events[0], -1));
    for (size_t i = 1; i < count; i++)
        ev_free(events[i]);
    if (atomic_load(&d->result) != 0)
        ev_free(events[0]);
    atomic_store(&d->done, 1);
    return 0;
}

static void test_enqueue_wait(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct gate_ctx g = { 0 };
    seda_stage_options_t o = { .name = "gated",
                               .handler = gated,
                               .ctx = &g,
                               .drop = drop_cb,
                               .batch_max = 1,
                               .queue_capacity = 2 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    enqueue_retry(s, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&g.entered));
    enqueue_retry(s, ev_new(1, 0));
    enqueue_retry(s, ev_new(2, 0));
    struct ev *late = ev_new(3, 0);
    CHECK_RC(seda_stage_enqueue_wait(s, late, 1000000), -ETIMEDOUT);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.rejected_full, 1);

    /* A handler on the shared threads may not wait: with the queue full,
     * -EDEADLK (counted as a full rejection). */
    struct destroyer_ctx d = { .victim = s };
    seda_stage_t *waiter =
        make_stage(rt, "waiter", try_wait_enqueue, &d, SEDA_THREADS_SHARED, 1, 1);
    enqueue_retry(waiter, ev_new(4, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_RC(atomic_load(&d.result), -EDEADLK);
    seda_stage_stats(s, &st);
    CHECK_EQ(st.rejected_full, 2);
    /* ... but with room it does not need to wait, and enqueues (it used to
     * refuse with -EDEADLK whatever the queue held). */
    _Atomic uint64_t roomy_n = 0;
    seda_stage_t *roomy = make_stage(rt, "roomy", consume_all, &roomy_n, SEDA_THREADS_SHARED, 1, 8);
    struct destroyer_ctx d2 = { .victim = roomy };
    seda_stage_t *waiter2 =
        make_stage(rt, "waiter2", try_wait_enqueue, &d2, SEDA_THREADS_SHARED, 1, 1);
    enqueue_retry(waiter2, ev_new(5, 0));
    WAIT_UNTIL(atomic_load(&d2.done));
    CHECK_OK(atomic_load(&d2.result));
    WAIT_UNTIL(atomic_load(&roomy_n) == 1);

    /* From outside, the wait ends when the stage makes room. */
    atomic_store(&g.open, 1);
    CHECK_OK(seda_stage_enqueue_wait(s, late, -1));
    WAIT_UNTIL(atomic_load(&g.events) == 4);
    seda_stage_release(s);
    seda_stage_release(waiter);
    seda_stage_release(waiter2);
    seda_stage_release(roomy);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 6);
}

int main(void)
{
    test_enqueue_wait();
    puts("enqueue_wait: ok");
    return 0;
}
