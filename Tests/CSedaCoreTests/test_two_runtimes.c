/*
 * Stages of two runtimes: a handler of runtime A enqueueing into a stage of
 * runtime B is, to B, an outside thread. No edge is recorded (stage ids are
 * per runtime: B's first stage used to show up as "a0 -> a0"), the event is
 * stamped with B's clock, a stage of A that pauses when clogged never parks
 * on B's stage (that would take A's park lock for B's lists), and B's
 * shutdown refuses A's handlers like any outside producer.
 */
#include "runtime_test.h"

struct cross_ctx {
    seda_stage_t *target;
    _Atomic uint64_t forwarded, refused_closed;
};

/* Forwards every event into the other runtime's stage, waiting out full
 * queues; after that stage's runtime stopped, frees what it refuses. */
static int forward_across(void *ctx, void **events, size_t count)
{
    struct cross_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        int r;
        while ((r = seda_stage_enqueue(c->target, events[i])) == -EAGAIN)
            sched_yield();
        if (r == -EPIPE) {
            ev_free(events[i]);
            atomic_fetch_add(&c->refused_closed, 1);
            continue;
        }
        CHECK_OK(r);
        atomic_fetch_add(&c->forwarded, 1);
    }
    return 0;
}

static void test_enqueue_across_runtimes(void)
{
    reset_counts();
    seda_clock_t *still; /* B's clock never moves: every delay in B is 0 */
    CHECK_OK(seda_clock_manual_create(&still, 1000000000));
    seda_runtime_t *a, *b;
    seda_runtime_options_t ob = { .clock = still };
    CHECK_OK(seda_runtime_create(&a, NULL));
    CHECK_OK(seda_runtime_create(&b, &ob));
    _Atomic uint64_t consumed = 0;
    next_capacity = 4; /* B's stage fills: A's stage meets -EAGAIN */
    seda_stage_t *b0 = make_stage(b, "b0", consume_all, &consumed, SEDA_THREADS_SHARED, 1, 1);
    next_capacity = 256;
    struct cross_ctx c = { .target = b0 };
    seda_stage_options_t o = { .name = "a0",
                               .handler = forward_across,
                               .ctx = &c,
                               .drop = drop_cb,
                               .batch_max = 8,
                               .queue_capacity = 4096,
                               .pause_when_clogged = 1 };
    seda_stage_t *a0;
    CHECK_OK(seda_stage_create(a, &o, &a0));
    enum { N = 5000 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(a0, ev_new(i, 0));
    WAIT_UNTIL(atomic_load(&consumed) == N);

    /* No edge from a0: b0 is not a stage of A's graph. */
    seda_stage_t *edges[2];
    CHECK_EQ(seda_stage_edges(a0, edges, 2), 0);
    seda_stage_stats_t st;
    seda_stage_stats(b0, &st);
    CHECK_EQ(st.processed, N);
    CHECK_EQ(st.queue_delay.count, N);
    CHECK_EQ(st.queue_delay.max_ns, 0); /* stamped with B's clock */
    seda_stage_stats(a0, &st);
    CHECK_EQ(st.pauses, 0); /* never parked on another runtime's stage */

    /* B stops: A's handler is an outside producer to B, refused. */
    CHECK_OK(seda_runtime_shutdown(b, SEDA_SHUTDOWN_DRAIN, -1));
    enqueue_retry(a0, ev_new(N, 0));
    WAIT_UNTIL(atomic_load(&c.refused_closed) == 1);
    CHECK_OK(seda_runtime_shutdown(a, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(a0);
    seda_stage_release(b0);
    seda_runtime_destroy(a);
    seda_runtime_destroy(b);
    seda_clock_destroy(still);
    CHECK_EQ(atomic_load(&freed), N + 1);
}

int main(void)
{
    test_enqueue_across_runtimes();
    puts("two runtimes: ok");
    return 0;
}
