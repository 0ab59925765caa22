/*
 * Runtime shutdown: DRAIN takes a cyclic graph to quiescence, HAND_BACK gives
 * what is queued to the drop callbacks; nothing is lost either way. The
 * stage graph stays readable after the shutdown, with the edges first used
 * while draining.
 */
#include <stdbool.h>

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
    seda_stage_options_t o = {
        .handler = ping, .drop = drop_cb, .batch_max = 16, .queue_capacity = 4096
    };
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
    /* The final graph: b is shut down, kept until the runtime is destroyed. */
    CHECK_EQ(seda_stage_edges(a, edges, 2), 1);
    CHECK(edges[0] == b);
    seda_stage_release(edges[0]);
    CHECK_RC(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1), -EPIPE);
    seda_stage_release(a);
    seda_stage_release(b);
    seda_runtime_destroy(rt);
}

/* ---- the final graph has the edges first used while draining ------------- */

struct forward_ctx {
    seda_runtime_t *rt;
    seda_stage_t *to;
    _Atomic int open;
};

static int gated_forward(void *ctx, void **events, size_t count)
{
    struct forward_ctx *f = ctx;
    while (!atomic_load(&f->open))
        sched_yield();
    for (size_t i = 0; i < count; i++)
        enqueue_retry(f->to, events[i]);
    return 0;
}

/* Whether rt's shutdown has begun: creating a stage under a taken name
 * fails with -EEXIST while the runtime runs, with -EPIPE from the
 * shutdown's start on. */
static bool stopping(seda_runtime_t *rt)
{
    seda_stage_options_t o = {
        .name = "first", .handler = consume_all, .drop = drop_cb, .queue_capacity = 2
    };
    seda_stage_t *s;
    int r = seda_stage_create(rt, &o, &s);
    if (r != -EPIPE)
        CHECK_RC(r, -EEXIST);
    return r == -EPIPE;
}

/* Opens the gate once the shutdown has begun. */
static void *open_once_stopping(void *p)
{
    struct forward_ctx *f = p;
    WAIT_UNTIL(stopping(f->rt));
    atomic_store(&f->open, 1);
    return NULL;
}

static void test_final_graph_has_drain_edges(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t consumed = 0;
    struct forward_ctx f = { .rt = rt };
    seda_stage_t *second =
        make_stage(rt, "second", consume_all, &consumed, SEDA_THREADS_SHARED, 1, 8);
    f.to = second;
    seda_stage_t *first = make_stage(rt, "first", gated_forward, &f, SEDA_THREADS_DEDICATED, 1, 8);
    for (uint64_t i = 0; i < 10; i++)
        enqueue_retry(first, ev_new(i, 0));
    CHECK_EQ(seda_stage_edges(first, NULL, 0), 0); /* nothing forwarded yet */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, open_once_stopping, &f) == 0);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    pthread_join(t, NULL);
    CHECK_EQ(atomic_load(&consumed), 10);
    seda_stage_t *edges[2];
    CHECK_EQ(seda_stage_edges(first, edges, 2), 1);
    CHECK(edges[0] == second);
    seda_stage_release(edges[0]);
    CHECK_EQ(seda_stage_edges(second, edges, 2), 0);
    seda_stage_release(first);
    seda_stage_release(second);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 10);
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

/* Holds its batch until the shutdown has handed something back (the drop
 * callback runs on the shutdown's thread before it waits for handlers), so
 * that events are still queued when the shutdown comes however the threads
 * are scheduled. (Sleeping 1 ms a batch instead let a producer descheduled
 * for 50 ms find all 200 processed, and nothing handed back.) */
static int held_until_handed_back(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    int64_t guard = seda_clock_now(NULL) + 20000000000LL; /* liveness guard */
    while (atomic_load(&dropped) == 0) {
        CHECK(seda_clock_now(NULL) < guard);
        struct timespec ts = { 0, 100000 }; /* leave the CPU to the shutdown */
        nanosleep(&ts, NULL);
    }
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
    seda_stage_t *s = make_stage(rt, "held", held_until_handed_back, &processed, manager, 1, 4);
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

/* ---- a drain with the largest timeout drains (bug: now + timeout overflowed) */

static void test_drain_without_limit(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t processed = 0;
    seda_stage_t *s = make_stage(rt, "slow", slow, &processed, SEDA_THREADS_SHARED, 1, 4);
    for (uint64_t i = 0; i < 100; i++)
        enqueue_retry(s, ev_new(i, 0));
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, INT64_MAX));
    CHECK_EQ(atomic_load(&processed), 100);
    CHECK_EQ(atomic_load(&dropped), 0);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 100);
}

/* ---- shutdown waits for a stage destroy running on another thread --------- */

struct racing_destroy {
    struct gate_ctx gate;
    seda_stage_t *stage;
    _Atomic int shutdown_returned, late_handler, destroy_called, destroy_called_before_return;
};

static int gated_then_check(void *ctx, void **events, size_t count)
{
    struct racing_destroy *r = ctx;
    atomic_store(&r->gate.entered, 1);
    while (!atomic_load(&r->gate.open))
        sched_yield();
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    if (atomic_load(&r->shutdown_returned))
        atomic_store(&r->late_handler, 1);
    return 0;
}

static void note_destroy(void *ctx)
{
    struct racing_destroy *r = ctx;
    atomic_store(&r->destroy_called, 1);
}

static void *destroy_thread(void *p)
{
    struct racing_destroy *r = p;
    int rc = seda_stage_destroy(r->stage, SEDA_SHUTDOWN_DRAIN);
    CHECK(rc == 0 || rc == -EPIPE); /* -EPIPE: the shutdown got there first */
    return NULL;
}

static void *shutdown_thread(void *p)
{
    seda_runtime_t *rt = p;
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0));
    return NULL;
}

/* A stage destroy running on one thread, holding the stage's handler, while
 * another thread shuts the runtime down: the shutdown may return only once
 * that handler has returned and the destroy callback was called (the header
 * promises every destroy callback called). It used to skip the stage. */
static void test_shutdown_waits_for_concurrent_destroy(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct racing_destroy r = { 0 };
    seda_stage_options_t o = { .name = "held",
                               .handler = gated_then_check,
                               .ctx = &r,
                               .drop = drop_cb,
                               .destroy = note_destroy,
                               .thread_manager = manager,
                               .batch_max = 1 };
    CHECK_OK(seda_stage_create(rt, &o, &r.stage));
    CHECK_OK(seda_stage_enqueue(r.stage, ev_new(0, 0)));
    WAIT_UNTIL(atomic_load(&r.gate.entered));
    pthread_t d, t;
    CHECK_OK(pthread_create(&d, NULL, destroy_thread, &r));
    /* The destroy has started once the stage refuses events. */
    uint64_t accepted = 1;
    for (;;) {
        struct ev *e = ev_new(1, 0);
        int rc = seda_stage_enqueue(r.stage, e);
        if (rc == -EPIPE) {
            free(e); /* never entered the stage: not counted */
            break;
        }
        if (rc == -EAGAIN) { /* full before the destroy thread got going */
            free(e);
            sched_yield();
            continue;
        }
        CHECK_OK(rc);
        accepted++;
        sched_yield();
    }
    CHECK_OK(pthread_create(&t, NULL, shutdown_thread, rt));
    /* Give a wrong shutdown every chance to return while the handler is
     * held (a right one cannot return before the gate opens). */
    for (int i = 0; i < 200 && !atomic_load(&r.shutdown_returned); i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
        if (pthread_tryjoin_np(t, NULL) == 0) {
            atomic_store(&r.destroy_called_before_return, atomic_load(&r.destroy_called));
            atomic_store(&r.shutdown_returned, 1);
        }
    }
    atomic_store(&r.gate.open, 1);
    if (!atomic_load(&r.shutdown_returned)) {
        CHECK_OK(pthread_join(t, NULL));
        atomic_store(&r.destroy_called_before_return, atomic_load(&r.destroy_called));
        atomic_store(&r.shutdown_returned, 1);
    }
    CHECK_OK(pthread_join(d, NULL));
    CHECK_EQ(atomic_load(&r.destroy_called_before_return), 1);
    CHECK_EQ(atomic_load(&r.late_handler), 0);
    seda_stage_release(r.stage);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), accepted); /* handled or handed back, each once */
}

int main(void)
{
    test_shutdown_waits_for_concurrent_destroy(SEDA_THREADS_DEDICATED);
    test_shutdown_waits_for_concurrent_destroy(SEDA_THREADS_SHARED);
    test_drain_without_limit();
    test_shutdown_drains_cycle();
    test_final_graph_has_drain_edges();
    test_shutdown_hands_back(SEDA_THREADS_SHARED);
    test_shutdown_hands_back(SEDA_THREADS_DEDICATED);
    puts("shutdown: ok");
    return 0;
}
