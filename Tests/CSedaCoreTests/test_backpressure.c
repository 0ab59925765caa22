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
    CHECK(su.pauses > 0); /* "up" waited for "down" to drain */
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
    seda_stage_options_t o = { .handler = forward_or_keep,
                               .drop = drop_cb,
                               .batch_max = 4,
                               .queue_capacity = 16,
                               .pause_when_clogged = 1 };
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

/* ---- a clogged CoDel stage that drops whole batches still drains --------- */

/* Downstream of a stage that pauses while it is clogged: a CoDel stage of one
 * event per batch whose queue filled while its thread was held. Once CoDel
 * drops, it drops every event it meets, so the queue falls from full to empty
 * through batches that are dropped whole; the drained check must run after
 * those too, or the stage goes idle still clogged and its upstream stays
 * parked for ever. */
#define GATE_EVENT UINT64_MAX

struct dropper_ctx {
    seda_clock_t *clock;
    struct gate_ctx gate;
    _Atomic uint64_t handled;
};

static int handle_after_gate(void *ctx, void **events, size_t count)
{
    struct dropper_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->n == GATE_EVENT) {
            atomic_store(&c->gate.entered, 1);
            while (!atomic_load(&c->gate.open))
                sched_yield();
        }
        ev_free(e);
        atomic_fetch_add(&c->handled, 1);
        seda_clock_manual_advance(c->clock, 1000); /* 1 us of work */
    }
    return 0;
}

static void test_codel_drops_whole_batches_while_clogged(void)
{
    reset_counts();
    struct dropper_ctx d = { 0 };
    CHECK_OK(seda_clock_manual_create(&d.clock, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = d.clock, .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    seda_stage_options_t o = { .name = "down",
                               .handler = handle_after_gate,
                               .ctx = &d,
                               .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .batch_max = 1,
                               .queue_capacity = 8,
                               .discipline = SEDA_DISCIPLINE_CODEL,
                               .codel_target_ns = 1,
                               .codel_interval_ns = 1 };
    seda_stage_t *down;
    CHECK_OK(seda_stage_create(rt, &o, &down));
    CHECK_OK(seda_stage_enqueue(down, ev_new(GATE_EVENT, 0)));
    WAIT_UNTIL(atomic_load(&d.gate.entered)); /* down's thread is held */

    struct pause_ctx up = { .next = down };
    seda_stage_options_t uo = { .name = "up",
                                .handler = forward_or_keep,
                                .ctx = &up,
                                .drop = drop_cb,
                                .batch_max = 8,
                                .queue_capacity = 4096,
                                .pause_when_clogged = 1 };
    CHECK_OK(seda_stage_create(rt, &uo, &up.self));
    enum { N = 1000 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(up.self, ev_new(i, 1));
    /* "up" filled down's queue, found it full and waits for it to drain. */
    seda_stage_stats_t su;
    WAIT_UNTIL((seda_stage_stats(up.self, &su), su.pauses > 0));
    CHECK_EQ(seda_stage_queue_length(down), 8);
    seda_clock_manual_advance(d.clock, 1000000000); /* they have waited 1 s */
    atomic_store(&d.gate.open, 1);
    /* Every event is handled or dropped by down: "up" ran again each time. */
    WAIT_UNTIL(atomic_load(&d.handled) + atomic_load(&dropped) == N + 1);
    seda_stage_stats_t sd;
    seda_stage_stats(down, &sd);
    CHECK(sd.dropped > 0);
    CHECK_EQ(atomic_load(&up.shed), 0);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(up.self);
    seda_stage_release(down);
    seda_runtime_destroy(rt);
    seda_clock_destroy(d.clock);
    CHECK_EQ(atomic_load(&freed), N + 1);
}

/* ---- a cycle longer than any fixed bound still never parks for ever ------ */

/* A ring of RING stages that pause when clogged, overloaded: every stage
 * finds its successor full and would wait for it. The last to park must see
 * that its successor waits, through RING - 1 others, for itself; a cycle
 * check that gave up after 64 stages let the whole ring park for ever. */
static void test_long_cycle_under_overload(void)
{
    enum { RING = 100, N = 4000 };
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    static struct pause_ctx ring[RING];
    memset(ring, 0, sizeof ring);
    seda_stage_options_t o = { .handler = forward_or_keep,
                               .drop = drop_cb,
                               .batch_max = 4,
                               .queue_capacity = 4,
                               .pause_when_clogged = 1 };
    for (int i = 0; i < RING; i++) {
        char name[16];
        snprintf(name, sizeof name, "ring%d", i);
        o.name = name;
        o.ctx = &ring[i];
        CHECK_OK(seda_stage_create(rt, &o, &ring[i].self));
    }
    for (int i = 0; i < RING; i++)
        ring[i].next = ring[(i + 1) % RING].self;
    uint64_t accepted = 0;
    for (uint64_t i = 0; i < N; i++) {
        struct ev *e = ev_new(i, 1000);
        if (seda_stage_enqueue(ring[i % RING].self, e) == 0)
            accepted++;
        else
            ev_free(e);
    }
    uint64_t pauses = 0;
    for (;;) {
        uint64_t finished = 0, shed = 0;
        for (int i = 0; i < RING; i++) {
            finished += atomic_load(&ring[i].finished);
            shed += atomic_load(&ring[i].shed);
        }
        if (finished + shed == accepted)
            break;
        /* Liveness guard: the ring must keep moving until every event is
         * finished or shed. */
        static int64_t deadline;
        if (!deadline)
            deadline = seda_clock_now(NULL) + 20000000000LL;
        CHECK(seda_clock_now(NULL) < deadline);
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < RING; i++) {
        seda_stage_stats_t st;
        seda_stage_stats(ring[i].self, &st);
        pauses += st.pauses;
    }
    CHECK(pauses > 0);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    for (int i = 0; i < RING; i++)
        seda_stage_release(ring[i].self);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
}

/* ---- a watcher installed while the stage clogs and drains ---------------- */

/* seda_stage_watch published the callback with plain stores that producers
 * (CLOGGED) and the stage's threads (DRAINED) read unsynchronised: a data
 * race for ThreadSanitizer, and two racing installs could both succeed. */
struct watch_ctx {
    seda_stage_t *stage;
    _Atomic int go, result;
    _Atomic uint64_t clogged, drained;
};

static void on_state(void *ctx, seda_stage_t *stage, int state)
{
    struct watch_ctx *w = ctx;
    CHECK(stage == w->stage);
    atomic_fetch_add(state == SEDA_STAGE_CLOGGED ? &w->clogged : &w->drained, 1);
}

static void *install_watch(void *p)
{
    struct watch_ctx *w = p;
    while (!atomic_load(&w->go))
        sched_yield();
    atomic_store(&w->result, seda_stage_watch(w->stage, on_state, w));
    return NULL;
}

static void *overfill(void *p)
{
    struct watch_ctx *w = p;
    for (uint64_t i = 0; i < 20000; i++) {
        struct ev *e = ev_new(i, 0);
        if (seda_stage_enqueue(w->stage, e) != 0)
            ev_free(e); /* full: the point */
    }
    return NULL;
}

static void test_watch_during_traffic(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t consumed = 0;
    next_capacity = 4;
    seda_stage_t *s = make_stage(rt, "watched", consume_all, &consumed, SEDA_THREADS_SHARED, 1, 1);
    next_capacity = 256;
    struct watch_ctx w[2] = { { .stage = s, .result = 1 }, { .stage = s, .result = 1 } };
    w[1] = w[0];
    pthread_t producer, installer[2];
    CHECK_OK(pthread_create(&producer, NULL, overfill, &w[0]));
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_create(&installer[i], NULL, install_watch, &w[i]));
    atomic_store(&w[0].go, 1);
    atomic_store(&w[1].go, 1);
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(installer[i], NULL));
    CHECK_OK(pthread_join(producer, NULL));
    /* Exactly one install wins. */
    int r0 = atomic_load(&w[0].result), r1 = atomic_load(&w[1].result);
    CHECK((r0 == 0 && r1 == -EBUSY) || (r0 == -EBUSY && r1 == 0));
    CHECK_RC(seda_stage_watch(s, on_state, &w[0]), -EBUSY);
    /* Only the winner's context hears transitions. */
    struct watch_ctx *loser = r0 == 0 ? &w[1] : &w[0];
    CHECK_EQ(atomic_load(&loser->clogged) + atomic_load(&loser->drained), 0);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 20000);
}

int main(void)
{
    test_watch_during_traffic();
    test_long_cycle_under_overload();
    test_codel_drops_whole_batches_while_clogged();
    test_pause_upstream_of_clogged();
    test_cycle_under_overload();
    puts("backpressure: ok");
    return 0;
}
