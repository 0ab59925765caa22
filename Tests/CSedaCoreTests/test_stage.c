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
    seda_stage_options_t o = { .name = "victim",
                               .handler = consume_all,
                               .ctx = &consumed,
                               .drop = drop_cb,
                               .destroy = count_destroy,
                               .thread_manager = manager,
                               .concurrency = 2,
                               .batch_max = 8,
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
    seda_stage_t *killer =
        make_stage(rt, "killer", destroy_from_handler, &d, SEDA_THREADS_SHARED, 1, 8);
    enqueue_retry(killer, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_RC(atomic_load(&d.result), -EDEADLK);
    /* From a dedicated stage's handler it works. */
    atomic_store(&d.done, 0);
    seda_stage_t *dkiller =
        make_stage(rt, "dkiller", destroy_from_handler, &d, SEDA_THREADS_DEDICATED, 1, 8);
    enqueue_retry(dkiller, ev_new(1, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_OK(atomic_load(&d.result));

    /* A pool whose handler resizes it, destroyed while draining. */
    seda_stage_t *self = NULL;
    seda_stage_options_t o = { .name = "resizer",
                               .handler = resize_self,
                               .ctx = &self,
                               .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .concurrency = 1,
                               .max_threads = 2,
                               .batch_max = 1,
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
    /* The exported limits are the ones enforced. */
    char name[SEDA_STAGE_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[SEDA_STAGE_NAME_MAX + 1] = '\0';
    o.concurrency = 0;
    o.name = name;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    name[SEDA_STAGE_NAME_MAX] = '\0';
    o.batch_max = SEDA_BATCH_MAX + 1;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.batch_max = SEDA_BATCH_MAX;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    CHECK(strcmp(seda_stage_name(s), name) == 0);
    CHECK_RC(seda_stage_set_batch_max(s, SEDA_BATCH_MAX + 1), -EINVAL);
    CHECK_RC(seda_stage_set_batch_max(s, 0), -EINVAL);
    CHECK_OK(seda_stage_set_batch_max(s, 1));
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.batch_max, 1);
    seda_stage_release(s);
    o.name = "x";
    /* Looking up no name finds nothing (it used to crash). */
    CHECK(seda_runtime_find_stage(rt, NULL) == NULL);
    CHECK(seda_runtime_find_stage(NULL, "x") == NULL);
    seda_runtime_destroy(rt);
}

/* ---- two handlers destroying each other's stages: one is refused --------- */

struct mutual_ctx {
    seda_stage_t *other;
    _Atomic int *inside; /* both handlers count in, then both destroy */
    _Atomic int result, done;
};

static int destroy_the_other(void *ctx, void **events, size_t count)
{
    struct mutual_ctx *m = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(m->inside, 1);
    while (atomic_load(m->inside) < 2)
        sched_yield();
    atomic_store(&m->result, seda_stage_destroy(m->other, SEDA_SHUTDOWN_DRAIN));
    atomic_store(&m->done, 1);
    return 0;
}

static void test_mutual_destroy(int manager_a, int manager_b)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic int inside = 0;
    struct mutual_ctx ma = { .inside = &inside }, mb = { .inside = &inside };
    seda_stage_t *a = make_stage(rt, "a", destroy_the_other, &ma, manager_a, 1, 1);
    seda_stage_t *b = make_stage(rt, "b", destroy_the_other, &mb, manager_b, 1, 1);
    ma.other = b;
    mb.other = a;
    enqueue_retry(a, ev_new(0, 0));
    enqueue_retry(b, ev_new(1, 0));
    /* Each destroy waits for the other handler to return: without the check
     * both would wait for ever. One of them is refused and returns. */
    WAIT_UNTIL(atomic_load(&ma.done) && atomic_load(&mb.done));
    int ra = atomic_load(&ma.result), rb = atomic_load(&mb.result);
    CHECK((ra == 0 && rb == -EDEADLK) || (ra == -EDEADLK && rb == 0));
    seda_stage_t *survivor = ra == 0 ? a : b;
    CHECK(seda_runtime_find_stage(rt, ra == 0 ? "b" : "a") == NULL);
    CHECK_OK(seda_stage_destroy(survivor, SEDA_SHUTDOWN_DRAIN));
    seda_stage_release(a);
    seda_stage_release(b);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 2);
}

int main(void)
{
    test_mutual_destroy(SEDA_THREADS_DEDICATED, SEDA_THREADS_DEDICATED);
    test_mutual_destroy(SEDA_THREADS_DEDICATED, SEDA_THREADS_SHARED);
    test_mutual_destroy(SEDA_THREADS_SHARED, SEDA_THREADS_DEDICATED);
    test_bad_options();
    test_destroy_under_traffic(SEDA_THREADS_SHARED, SEDA_SHUTDOWN_DRAIN);
    test_destroy_under_traffic(SEDA_THREADS_SHARED, SEDA_SHUTDOWN_HAND_BACK);
    test_destroy_under_traffic(SEDA_THREADS_DEDICATED, SEDA_SHUTDOWN_DRAIN);
    test_destroy_under_traffic(SEDA_THREADS_DEDICATED, SEDA_SHUTDOWN_HAND_BACK);
    test_destroy_from_handlers();
    puts("stage: ok");
    return 0;
}
