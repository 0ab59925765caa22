/*
 * When no thread can be started, every call that starts threads says so with
 * one code, -ENOMEM ("out of memory, or no thread could be started"), and
 * leaves nothing behind: not pthread's EAGAIN, which to every Seda caller
 * means "full, try again". Threads are made to fail by a default stack size
 * no address space can hold (pthread_setattr_default_np).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "test.h"

static void drop(void *ctx, void *event)
{
    (void)ctx;
    (void)event;
}

static int handle(void *ctx, void **events, size_t count)
{
    (void)ctx;
    (void)events;
    (void)count;
    return 0;
}

static void undeliverable(void *ctx, void *target, void *event, int code)
{
    (void)ctx;
    (void)target;
    (void)event;
    (void)code;
}

static void *nothing(void *arg)
{
    return arg;
}

/* From now on, threads started without attributes fail (or, with ok, work). */
static void threads_fail(int fail)
{
    pthread_attr_t a;
    CHECK_OK(pthread_getattr_default_np(&a));
    CHECK_OK(pthread_attr_setstacksize(&a, fail ? (size_t)1 << 46 : (size_t)8 << 20));
    CHECK_OK(pthread_setattr_default_np(&a));
    pthread_attr_destroy(&a);
}

int main(void)
{
    /* Can this libc and sanitizer be made to fail thread creation? */
    threads_fail(1);
    pthread_t probe;
    int e = pthread_create(&probe, NULL, nothing, NULL);
    if (e == 0) {
        pthread_join(probe, NULL);
        puts("thread failure: skipped (threads start with any stack size here)");
        return TEST_SKIP;
    }

    seda_runtime_t *rt = NULL;
    seda_runtime_options_t ro = { .cpu_threads = 2 };
    CHECK_RC(seda_runtime_create(&rt, &ro), -ENOMEM);

    threads_fail(0);
    CHECK_OK(seda_runtime_create(&rt, &ro));
    threads_fail(1);
    seda_stage_options_t o = { .name = "pool",
                               .handler = handle,
                               .drop = drop,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .max_threads = 4 };
    seda_stage_t *s;
    CHECK_RC(seda_stage_create(rt, &o, &s), -ENOMEM);
    CHECK(seda_runtime_find_stage(rt, "pool") == NULL);
    threads_fail(0);
    CHECK_OK(seda_stage_create(rt, &o, &s));
    threads_fail(1);
    CHECK_RC(seda_stage_set_threads(s, 3), -ENOMEM);

    seda_timers_t *t;
    CHECK_OK(seda_timers_create(&t, NULL, 0, undeliverable, NULL));
    CHECK_RC(seda_timers_start(t, NULL), -ENOMEM);
    threads_fail(0);
    CHECK_OK(seda_timers_start(t, NULL));
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);

    seda_stage_release(s);
    seda_runtime_destroy(rt);
    puts("thread failure: ok");
    return 0;
}
