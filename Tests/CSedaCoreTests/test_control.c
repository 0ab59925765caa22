/*
 * Control events seen from a handler: seda_batch_is_control tells, for each
 * event of the batch being handled, whether it entered as a control event
 * (which bypassed admission control, so an admission controller must not
 * count it as leaving), and seda_batch_control_count how many there are.
 * Also after CoDel dropped some of the batch, and never outside a handler.
 * Given back at shutdown or destroy, control events go to drop_control, the
 * others to drop.
 */
#include <stdbool.h>

#include "runtime_test.h"

#define CONTROL(i) ((i) % 3 == 0) /* every third event is a control event */

struct control_ctx {
    seda_clock_t *clock; /* NULL: leave the clock alone */
    _Atomic int go;      /* the gate event (ttl -1) waits for it */
    _Atomic uint64_t seen, controls;
};

static int check_controls(void *ctx, void **events, size_t count)
{
    struct control_ctx *c = ctx;
    int expected = 0;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->ttl == -1) { /* the gate: a plain event */
            while (!atomic_load(&c->go))
                sched_yield();
            CHECK_EQ(seda_batch_is_control(i), 0);
            continue;
        }
        int control = CONTROL(e->n);
        CHECK_EQ(seda_batch_is_control(i), control);
        expected += control;
    }
    CHECK_EQ(seda_batch_control_count(), expected);
    CHECK_RC(seda_batch_is_control(count), -EINVAL);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(&c->controls, (uint64_t)expected);
    atomic_fetch_add(&c->seen, count);
    if (c->clock)
        seda_clock_manual_advance(c->clock, 10000000); /* 10 ms a batch: CoDel drops */
    return 0;
}

static void run(int manager, int discipline)
{
    reset_counts();
    struct control_ctx c = { 0 };
    seda_runtime_options_t ro = { 0 };
    if (discipline == SEDA_DISCIPLINE_CODEL) {
        CHECK_OK(seda_clock_manual_create(&c.clock, 1000000000));
        ro.clock = c.clock;
    }
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, &ro));
    seda_stage_options_t o = { .name = "mixed",
                               .handler = check_controls,
                               .ctx = &c,
                               .drop = drop_cb,
                               .thread_manager = manager,
                               .batch_max = 16,
                               .queue_capacity = 1024,
                               .discipline = discipline };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    /* The stage's thread waits at a gate until every event is queued, so
     * that, with CoDel, they all wait while the clock moves. */
    CHECK_OK(seda_stage_enqueue(s, ev_new(1, -1)));
    enum { N = 600 };
    for (uint64_t i = 0; i < N; i++) {
        struct ev *e = ev_new(i, 0);
        CHECK_OK(CONTROL(i) ? seda_stage_enqueue_control(s, e) : seda_stage_enqueue(s, e));
    }
    atomic_store(&c.go, 1);
    WAIT_UNTIL(atomic_load(&c.seen) + atomic_load(&dropped) == N + 1);
    CHECK_EQ(atomic_load(&c.controls), N / 3); /* never dropped, each seen as one */
    if (discipline == SEDA_DISCIPLINE_CODEL)
        CHECK(atomic_load(&dropped) > 0);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    if (c.clock)
        seda_clock_destroy(c.clock);
    CHECK_EQ(atomic_load(&freed), N + 1);
}

/* ---- handed back: control events to drop_control, the rest to drop -------- */

static _Atomic uint64_t control_drops;

static void drop_plain_only(void *ctx, void *event)
{
    CHECK(!CONTROL(((struct ev *)event)->n));
    drop_cb(ctx, event);
}

static void drop_control_only(void *ctx, void *event)
{
    (void)ctx;
    CHECK(CONTROL(((struct ev *)event)->n));
    atomic_fetch_add(&control_drops, 1);
    ev_free(event);
}

struct opener {
    seda_stage_t *stage;
    struct control_ctx *c;
    uint64_t expected; /* events to be handed back before opening */
};

/* Opens the gate once the stage has handed back every queued event: the
 * handler holds the gate event until then, so nothing else is handled. */
static void *open_after_hand_back(void *p)
{
    struct opener *o = p;
    seda_stage_stats_t st;
    WAIT_UNTIL((seda_stage_stats(o->stage, &st), st.handed_back == o->expected));
    atomic_store(&o->c->go, 1);
    return NULL;
}

static void hand_back(bool by_destroy)
{
    reset_counts();
    atomic_store(&control_drops, 0);
    struct control_ctx c = { 0 };
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    seda_stage_options_t o = { .name = "given-back",
                               .handler = check_controls,
                               .ctx = &c,
                               .drop = drop_plain_only,
                               .drop_control = drop_control_only,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .batch_max = 1,
                               .classes = 2 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    CHECK_OK(seda_stage_enqueue(s, ev_new(1, -1)));
    WAIT_UNTIL(seda_stage_queue_length(s) == 0); /* the handler holds it */
    enum { N = 30 };
    for (uint64_t i = 0; i < N; i++) {
        struct ev *e = ev_new(i, 0);
        CHECK_OK(CONTROL(i) ? seda_stage_enqueue_control(s, e) : seda_stage_enqueue(s, e));
    }
    struct opener op = { .stage = s, .c = &c, .expected = N };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, open_after_hand_back, &op) == 0);
    if (by_destroy)
        CHECK_OK(seda_stage_destroy(s, SEDA_SHUTDOWN_HAND_BACK));
    else
        CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0));
    pthread_join(t, NULL);
    CHECK_EQ(atomic_load(&control_drops), N / 3);
    CHECK_EQ(atomic_load(&dropped), N - N / 3);
    CHECK_EQ(atomic_load(&c.seen), 1); /* the gate event only */
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N + 1);
}

int main(void)
{
    /* Outside a handler there is no batch. */
    CHECK_RC(seda_batch_is_control(0), -EINVAL);
    CHECK_RC(seda_batch_control_count(), -EINVAL);
    run(SEDA_THREADS_SHARED, SEDA_DISCIPLINE_FIFO);
    run(SEDA_THREADS_DEDICATED, SEDA_DISCIPLINE_FIFO);
    run(SEDA_THREADS_DEDICATED, SEDA_DISCIPLINE_CODEL);
    hand_back(false);
    hand_back(true);
    puts("control: ok");
    return 0;
}
