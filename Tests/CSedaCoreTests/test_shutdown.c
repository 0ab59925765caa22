/*
 * Runtime shutdown: DRAIN takes a cyclic graph to quiescence, HAND_BACK gives
 * what is queued to the drop callbacks; nothing is lost either way.
 */
#include "runtime_test.h"

/* ---- shutdown drains a cyclic graph to quiescence --------------------------- */

struct ping_ctx {
    seda_stage_t *other;
    _Atomic uint64_t finished;
};

static int ping(void *ctx, void **events, size_t count)
{
    struct ping_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->ttl-- == 0) {
            ev_free(e);
            atomic_fetch_add(&c->finished, 1);
            continue;
        }
        int r = seda_stage_enqueue(c->other, e);
        if (r == -EAGAIN) {
            /* A full peer in a cycle: back off by handing the event to our
             * own queue's tail is not possible from here either, so keep it
             * moving by retrying; both stages run on the shared threads. */
            while ((r = seda_stage_enqueue(c->other, e)) == -EAGAIN)
                sched_yield();
        }
        CHECK_OK(r);
    }
    return 0;
}

static void test_shutdown_drains_cycle(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct ping_ctx pa = { 0 }, pb = { 0 };
    seda_stage_options_t o = { .handler = ping, .drop = drop_cb, .batch_max = 16,
                               .queue_capacity = 4096 };
    seda_stage_t *a, *b;
    o.name = "ping";
    o.ctx = &pa;
    CHECK_OK(seda_stage_create(rt, &o, &a));
    o.name = "pong";
    o.ctx = &pb;
    CHECK_OK(seda_stage_create(rt, &o, &b));
    pa.other = b;
    pb.other = a;
    enum { N = 1000, TTL = 200 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(a, ev_new(i, TTL));
    /* The graph has the cycle as soon as each side has forwarded once. */
    seda_stage_t *edges[2];
    WAIT_UNTIL(seda_stage_edges(a, NULL, 0) == 1 && seda_stage_edges(b, NULL, 0) == 1);
    CHECK_EQ(seda_stage_edges(a, edges, 2), 1);
    CHECK(edges[0] == b);
    seda_stage_release(edges[0]);
    /* Shut down now: most events are still bouncing between the two. */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    CHECK_EQ(atomic_load(&pa.finished) + atomic_load(&pb.finished), N);
    CHECK_EQ(atomic_load(&dropped), 0);
    CHECK_EQ(atomic_load(&freed), N);
    CHECK_EQ(seda_stage_edges(a, edges, 2), 0); /* b is gone */
    CHECK_RC(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1), -EPIPE);
    seda_stage_release(a);
    seda_stage_release(b);
    seda_runtime_destroy(rt);
}

/* ---- shutdown that hands back what is queued ------------------------------ */

static int slow(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(n, count);
    return 0;
}

static void test_shutdown_hands_back(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t processed = 0;
    seda_stage_t *s = make_stage(rt, "slow", slow, &processed, manager, 1, 4);
    for (uint64_t i = 0; i < 200; i++)
        enqueue_retry(s, ev_new(i, 0));
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0));
    CHECK(atomic_load(&dropped) > 0);
    CHECK_EQ(atomic_load(&processed) + atomic_load(&dropped), 200);
    CHECK_EQ(atomic_load(&freed), 200);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.handed_back, atomic_load(&dropped));
    CHECK_RC(seda_stage_enqueue(s, (void *)1), -EPIPE);
    seda_stage_stats(s, &st);
    CHECK_EQ(st.rejected_closed, 1);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
}

int main(void)
{
    test_shutdown_drains_cycle();
    test_shutdown_hands_back(SEDA_THREADS_SHARED);
    test_shutdown_hands_back(SEDA_THREADS_DEDICATED);
    puts("shutdown: ok");
    return 0;
}
