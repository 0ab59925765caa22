/*
 * Backpressure by scheduling: a stage that pauses when clogged waits for its
 * downstream stage to drain; a cycle of such stages never parks for ever.
 */
#include "runtime_test.h"

/* ---- refuse to schedule upstream of a clogged stage; cycles never park ----- */

struct pause_ctx {
    seda_stage_t *self, *next; /* next NULL: a slow sink */
    _Atomic uint64_t finished, shed;
};

/* Forwards (or, as a sink, consumes slowly); when the next stage is full,
 * puts the rest of the batch back into its own queue, or sheds an event if
 * that is full too (counted). */
static int forward_or_keep(void *ctx, void **events, size_t count)
{
    struct pause_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (!c->next || e->ttl-- <= 0) {
            if (!c->next) {
                struct timespec ts = { 0, 100000 }; /* a slow sink: 0.1 ms an event */
                nanosleep(&ts, NULL);
            }
            ev_free(e);
            atomic_fetch_add(&c->finished, 1);
            continue;
        }
        if (seda_stage_enqueue(c->next, e) == 0)
            continue;
        e->ttl++;
        if (seda_stage_enqueue(c->self, e) != 0) {
            ev_free(e);
            atomic_fetch_add(&c->shed, 1);
        }
    }
    return 0;
}

static void test_pause_upstream_of_clogged(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct pause_ctx up = { 0 }, down = { 0 };
    seda_stage_options_t o = { .handler = forward_or_keep, .drop = drop_cb, .batch_max = 8 };
    o.name = "down";
    o.ctx = &down;
    o.queue_capacity = 8;
    CHECK_OK(seda_stage_create(rt, &o, &down.self));
    o.name = "up";
    o.ctx = &up;
    o.queue_capacity = 4096;
    o.pause_when_clogged = 1;
    CHECK_OK(seda_stage_create(rt, &o, &up.self));
    up.next = down.self;
    o.thread_manager = SEDA_THREADS_DEDICATED;
    CHECK_RC(seda_stage_create(rt, &o, &up.self), -EINVAL); /* shared threads only */
    enum { N = 2000 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(up.self, ev_new(i, 1));
    WAIT_UNTIL(atomic_load(&down.finished) + atomic_load(&up.shed) == N);
    seda_stage_stats_t su, sd;
    seda_stage_stats(up.self, &su);
    seda_stage_stats(down.self, &sd);
    CHECK(su.pauses > 0);               /* "up" waited for "down" to drain */
    CHECK(sd.queue_peak <= 8);
    CHECK_EQ(atomic_load(&up.shed), 0); /* its own queue had room: nothing lost */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(up.self);
    seda_stage_release(down.self);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
}

static void test_cycle_under_overload(void)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    struct pause_ctx a = { 0 }, b = { 0 };
    seda_stage_options_t o = { .handler = forward_or_keep, .drop = drop_cb, .batch_max = 4,
                               .queue_capacity = 16, .pause_when_clogged = 1 };
    o.name = "ping";
    o.ctx = &a;
    CHECK_OK(seda_stage_create(rt, &o, &a.self));
    o.name = "pong";
    o.ctx = &b;
    CHECK_OK(seda_stage_create(rt, &o, &b.self));
    a.next = b.self;
    b.next = a.self;
    /* Far more events than the cycle holds: both stages clog at once. */
    enum { N = 2000 };
    uint64_t accepted = 0;
    for (uint64_t i = 0; i < N; i++) {
        struct ev *e = ev_new(i, 50);
        if (seda_stage_enqueue(i % 2 ? a.self : b.self, e) == 0)
            accepted++;
        else
            ev_free(e);
    }
    /* Neither waits for the other for ever: the graph drains to quiescence. */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    uint64_t finished = atomic_load(&a.finished) + atomic_load(&b.finished);
    uint64_t shed = atomic_load(&a.shed) + atomic_load(&b.shed);
    CHECK_EQ(finished + shed, accepted);
    seda_stage_release(a.self);
    seda_stage_release(b.self);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
}

int main(void)
{
    test_pause_upstream_of_clogged();
    test_cycle_under_overload();
    puts("backpressure: ok");
    return 0;
}
