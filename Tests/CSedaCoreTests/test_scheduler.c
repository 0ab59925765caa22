/*
 * The shared thread manager and the pools with real threads: pipelines keep
 * order and the graph is learned, batches respect batch_max, a handler never
 * runs twice at once unless its concurrency allows, and a tiny run queue
 * never strands a stage.
 */
#include "runtime_test.h"

/* ---- a three-stage pipeline keeps FIFO order through single-threaded stages */

struct forward_ctx {
    seda_stage_t *next;
    uint64_t expect; /* last stage: next number due */
    _Atomic uint64_t done;
};

static int forward(void *ctx, void **events, size_t count)
{
    struct forward_ctx *c = ctx;
    for (size_t i = 0; i < count; i++)
        enqueue_retry(c->next, events[i]);
    return 0;
}

static int sink_in_order(void *ctx, void **events, size_t count)
{
    struct forward_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        CHECK_EQ(e->n, c->expect);
        c->expect++;
        ev_free(e);
    }
    atomic_fetch_add(&c->done, count);
    return 0;
}

static void test_pipeline_order(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct forward_ctx cc = { 0 }, cb = { 0 }, ca = { 0 };
    /* Handlers forward with a blocking retry, which on the shared threads
     * would deadlock once every thread waits on a full queue downstream:
     * give the inner queues room for everything. */
    next_capacity = 1 << 17;
    seda_stage_t *c = make_stage(rt, "c", sink_in_order, &cc, manager, 1, 32);
    cb.next = c;
    seda_stage_t *b = make_stage(rt, "b", forward, &cb, manager, 1, 7);
    ca.next = b;
    seda_stage_t *a = make_stage(rt, "a", forward, &ca, manager, 1, 64);
    next_capacity = 256;
    enum { N = 100000 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(a, ev_new(i, 0));
    WAIT_UNTIL(atomic_load(&cc.done) == N);

    seda_stage_stats_t st;
    seda_stage_stats(b, &st);
    CHECK_EQ(st.enqueued, N);
    CHECK_EQ(st.processed, N);
    CHECK(st.batches >= N / 7);
    CHECK_EQ(st.queue_delay.count, N);
    CHECK_EQ(st.service_time.count, N);
    CHECK(st.queue_peak >= 1 && st.queue_peak <= N);

    /* The graph: a -> b -> c, learned from the handlers' enqueues. */
    seda_stage_t *edges[4];
    CHECK_EQ(seda_stage_edges(a, edges, 4), 1);
    CHECK(edges[0] == b);
    seda_stage_release(edges[0]);
    CHECK_EQ(seda_stage_edges(c, edges, 4), 0);

    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    CHECK_RC(seda_stage_enqueue(a, (void *)1), -EPIPE); /* a stale handle fails cleanly */
    seda_stage_release(a);
    seda_stage_release(b);
    seda_stage_release(c);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
    CHECK_EQ(atomic_load(&dropped), 0);
}

static void test_batching(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct gate_ctx g = { 0 };
    seda_stage_t *s = make_stage(rt, "batcher", gated, &g, manager, 1, 16);
    enqueue_retry(s, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&g.entered)); /* the handler holds the only thread slot */
    for (uint64_t i = 1; i <= 100; i++)
        enqueue_retry(s, ev_new(i, 0));
    atomic_store(&g.open, 1);
    WAIT_UNTIL(atomic_load(&g.events) == 101);
    CHECK_EQ(atomic_load(&g.max_batch), 16);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK(st.queue_peak >= 16);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 101);
}

/* ---- a handler runs on one thread at a time unless concurrency > 1 -------- */

struct exclusive_ctx {
    _Atomic int inside, max_inside;
    _Atomic uint64_t events;
};

static int count_inside(void *ctx, void **events, size_t count)
{
    struct exclusive_ctx *x = ctx;
    int now = atomic_fetch_add(&x->inside, 1) + 1;
    int m = atomic_load(&x->max_inside);
    while (now > m && !atomic_compare_exchange_weak(&x->max_inside, &m, now)) {
    }
    for (int spin = 0; spin < 2000; spin++)
        __asm__ __volatile__("" ::: "memory");
    sched_yield();
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_sub(&x->inside, 1);
    atomic_fetch_add(&x->events, count);
    return 0;
}

static void test_concurrency(uint32_t conc)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 3 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    CHECK_EQ(seda_runtime_cpu_threads(rt), 3);
    struct exclusive_ctx x = { 0 };
    seda_stage_t *s = make_stage(rt, "exclusive", count_inside, &x, SEDA_THREADS_SHARED, conc, 4);
    enum { N = 20000 };
    pthread_t t[2];
    struct producer_arg pa = { .stage = s, .count = N };
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_create(&t[i], NULL, producer, &pa));
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(t[i], NULL));
    WAIT_UNTIL(atomic_load(&x.events) == 2 * N);
    CHECK(atomic_load(&x.max_inside) >= 1);
    CHECK(atomic_load(&x.max_inside) <= (int)conc);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 2 * N);
}

/* ---- a tiny run queue: momentarily "full" rings never strand a stage ------ */

static void test_tiny_run_queue(void)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .run_queue_capacity = 2, .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    _Atomic uint64_t n = 0;
    seda_stage_t *a = make_stage(rt, "a", consume_all, &n, SEDA_THREADS_SHARED, 1, 1);
    seda_stage_t *b = make_stage(rt, "b", consume_all, &n, SEDA_THREADS_SHARED, 1, 1);
    struct producer_arg pa = { .stage = a, .count = 20000 }, pb = { .stage = b, .count = 20000 };
    pthread_t t[2];
    CHECK_OK(pthread_create(&t[0], NULL, producer, &pa));
    CHECK_OK(pthread_create(&t[1], NULL, producer, &pb));
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(t[i], NULL));
    WAIT_UNTIL(atomic_load(&n) == 40000);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(a);
    seda_stage_release(b);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 40000);
}

/* ---- the run-next slot does not hold an event while a thread idles -------- */

/* A's first event goes on to B; A's next events wait (in A's handler) until
 * B has handled it. B lands in the run-next slot of A's thread, and A's turn
 * goes on for several batches, while the second shared thread sleeps with
 * nothing to do. B must be handed to that thread: before, B waited in the
 * slot for A's whole turn (and here, with A waiting for B, for ever). */
struct handoff_ctx {
    seda_stage_t *b;
    _Atomic uint64_t handled;
};

static int forward_first_then_wait(void *ctx, void **events, size_t count)
{
    struct handoff_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->n == 0) {
            CHECK_OK(seda_stage_enqueue(c->b, e));
            continue;
        }
        int64_t guard = seda_clock_now(NULL) + 20000000000LL; /* liveness guard */
        while (atomic_load(&c->handled) == 0) {
            CHECK(seda_clock_now(NULL) < guard);
            sched_yield();
        }
        ev_free(e);
    }
    return 0;
}

static int count_handled(void *ctx, void **events, size_t count)
{
    struct handoff_ctx *c = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(&c->handled, count);
    return 0;
}

static void test_run_next_handed_to_idle_thread(void)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    struct handoff_ctx c = { 0 };
    c.b = make_stage(rt, "b", count_handled, &c, SEDA_THREADS_SHARED, 1, 64);
    seda_stage_t *a = make_stage(rt, "a", forward_first_then_wait, &c, SEDA_THREADS_SHARED, 1, 1);
    /* Both shared threads asleep: idle, with nothing to run. */
    WAIT_UNTIL(threads_sleeping("seda-cpu") == 2);
    enum { N = 20 };
    void *batch[N];
    for (int i = 0; i < N; i++)
        batch[i] = ev_new((uint64_t)i, 0);
    CHECK_RC(seda_stage_enqueue_many(a, batch, N), N); /* a long turn for A */
    WAIT_UNTIL(atomic_load(&c.handled) == 1);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_stats_t st;
    seda_stage_stats(a, &st);
    CHECK_EQ(st.processed, N);
    seda_stage_release(a);
    seda_stage_release(c.b);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
}

int main(void)
{
    test_run_next_handed_to_idle_thread();
    test_pipeline_order(SEDA_THREADS_SHARED);
    test_pipeline_order(SEDA_THREADS_DEDICATED);
    test_batching(SEDA_THREADS_SHARED);
    test_batching(SEDA_THREADS_DEDICATED);
    test_concurrency(1);
    test_concurrency(2);
    test_tiny_run_queue();
    puts("scheduler: ok");
    return 0;
}
