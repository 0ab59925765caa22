/*
 * Stages come and go: bad options are refused, a stage destroyed under
 * traffic loses nothing and frees its name, and destroying from handlers is
 * refused where it would wait for itself.
 */
#include "runtime_test.h"

static void test_destroy_under_traffic(int manager, int mode)
{
    reset_counts();
    atomic_store(&destroy_ctx_calls, 0);
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t consumed = 0, accepted = 0;
    seda_stage_options_t o = { .name = "victim", .handler = consume_all, .ctx = &consumed,
                               .drop = drop_cb, .destroy = count_destroy,
                               .thread_manager = manager, .concurrency = 2, .batch_max = 8,
                               .queue_capacity = 64 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    CHECK_RC(seda_stage_create(rt, &o, &s), -EEXIST);
    seda_stage_t *found = seda_runtime_find_stage(rt, "victim");
    CHECK(found == s);
    seda_stage_release(found);
    pthread_t t[2];
    struct producer_arg pa = { .stage = s, .count = 1000000, .accepted = &accepted };
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_create(&t[i], NULL, producer, &pa));
    WAIT_UNTIL(atomic_load(&consumed) > 1000);
    CHECK_OK(seda_stage_destroy(s, mode));
    CHECK_EQ(atomic_load(&destroy_ctx_calls), 1);
    CHECK_RC(seda_stage_destroy(s, mode), -EPIPE);
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(t[i], NULL));
    /* Every accepted event was processed or handed back, exactly once. */
    CHECK_EQ(atomic_load(&consumed) + atomic_load(&dropped), atomic_load(&accepted));
    if (mode == SEDA_SHUTDOWN_DRAIN)
        CHECK_EQ(atomic_load(&dropped), 0);
    CHECK(seda_runtime_find_stage(rt, "victim") == NULL);
    CHECK_RC(seda_stage_enqueue(s, (void *)1), -EPIPE);
    seda_stage_release(s);
    /* The name is free again. */
    CHECK_OK(seda_stage_create(rt, &o, &s));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&destroy_ctx_calls), 2);
}

/* ---- destroy from handlers: refused where it would wait for itself --------- */

static int destroy_from_handler(void *ctx, void **events, size_t count)
{
    struct destroyer_ctx *d = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_store(&d->result, seda_stage_destroy(d->victim, SEDA_SHUTDOWN_DRAIN));
    atomic_store(&d->done, 1);
    return 0;
}

static int resize_self(void *ctx, void **events, size_t count)
{
    seda_stage_t **self = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    int r = seda_stage_set_threads(*self, 2); /* racing a destroy: never a deadlock */
    CHECK(r == 0 || r == -EPIPE);
    return 0;
}

static void test_destroy_from_handlers(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t n = 0;
    seda_stage_t *victim = make_stage(rt, "victim", consume_all, &n, SEDA_THREADS_SHARED, 1, 8);
    struct destroyer_ctx d = { .victim = victim };
    seda_stage_t *killer = make_stage(rt, "killer", destroy_from_handler, &d, SEDA_THREADS_SHARED, 1, 8);
    enqueue_retry(killer, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_RC(atomic_load(&d.result), -EDEADLK);
    /* From a dedicated stage's handler it works. */
    atomic_store(&d.done, 0);
    seda_stage_t *dkiller = make_stage(rt, "dkiller", destroy_from_handler, &d, SEDA_THREADS_DEDICATED, 1, 8);
    enqueue_retry(dkiller, ev_new(1, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_OK(atomic_load(&d.result));

    /* A pool whose handler resizes it, destroyed while draining. */
    seda_stage_t *self = NULL;
    seda_stage_options_t o = { .name = "resizer", .handler = resize_self, .ctx = &self,
                               .drop = drop_cb, .thread_manager = SEDA_THREADS_DEDICATED,
                               .concurrency = 1, .max_threads = 2, .batch_max = 1,
                               .queue_capacity = 1024 };
    CHECK_OK(seda_stage_create(rt, &o, &self));
    for (uint64_t i = 0; i < 500; i++)
        enqueue_retry(self, ev_new(i, 0));
    CHECK_OK(seda_stage_destroy(self, SEDA_SHUTDOWN_DRAIN));
    seda_stage_release(self);
    seda_stage_release(victim);
    seda_stage_release(killer);
    seda_stage_release(dkiller);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 502);
}

static void test_bad_options(void)
{
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    seda_stage_t *s;
    seda_stage_options_t o = { .name = "x", .handler = consume_all, .drop = drop_cb };
    o.drop = NULL;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.drop = drop_cb;
    o.name = "";
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.name = "x";
    o.thread_manager = 7;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.thread_manager = SEDA_THREADS_SHARED;
    o.batch_max = 5000;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.batch_max = 0;
    o.concurrency = 70000; /* more than the run queue can carry */
    CHECK_RC(seda_stage_create(rt, &o, &s), -ENOSPC);
    seda_runtime_destroy(rt);
}

int main(void)
{
    test_bad_options();
    test_destroy_under_traffic(SEDA_THREADS_SHARED, SEDA_SHUTDOWN_DRAIN);
    test_destroy_under_traffic(SEDA_THREADS_SHARED, SEDA_SHUTDOWN_HAND_BACK);
    test_destroy_under_traffic(SEDA_THREADS_DEDICATED, SEDA_SHUTDOWN_DRAIN);
    test_destroy_under_traffic(SEDA_THREADS_DEDICATED, SEDA_SHUTDOWN_HAND_BACK);
    test_destroy_from_handlers();
    puts("stage: ok");
    return 0;
}
