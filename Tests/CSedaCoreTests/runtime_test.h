/*
 * Helpers shared by the runtime's tests (test_scheduler.c, test_stage.c, ...):
 * counted events, a drop callback, bounded waits, a stage factory, and a few
 * handlers more than one test uses. Functions are static inline, so a test
 * that uses part of them gets no unused-function warning.
 */
#ifndef SEDA_RUNTIME_TEST_H
#define SEDA_RUNTIME_TEST_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "test.h"

/* An event: a number and a time-to-live for the cyclic test. */
struct ev {
    uint64_t n;
    int ttl;
};

static _Atomic uint64_t freed, dropped;

static inline struct ev *ev_new(uint64_t n, int ttl)
{
    struct ev *e = malloc(sizeof *e);
    CHECK(e != NULL);
    e->n = n;
    e->ttl = ttl;
    return e;
}

static inline void ev_free(struct ev *e)
{
    free(e);
    atomic_fetch_add(&freed, 1);
}

static inline void drop_cb(void *ctx, void *event)
{
    (void)ctx;
    atomic_fetch_add(&dropped, 1);
    ev_free(event);
}

static inline void reset_counts(void)
{
    atomic_store(&freed, 0);
    atomic_store(&dropped, 0);
}

/* Bounded waiting for a condition some other thread makes true (a liveness
 * guard, not a timing assertion: 20 s is far beyond any honest delay). */
#define WAIT_UNTIL(cond)                                               \
    do {                                                               \
        int64_t wait_deadline_ = seda_clock_now(NULL) + 20000000000LL; \
        while (!(cond)) {                                              \
            CHECK(seda_clock_now(NULL) < wait_deadline_);              \
            struct timespec ts_ = { 0, 1000000 };                      \
            nanosleep(&ts_, NULL);                                     \
        }                                                              \
    } while (0)

static size_t next_capacity = 256; /* queue capacity for make_stage */

static inline seda_stage_t *make_stage(seda_runtime_t *rt, const char *name, seda_handler_fn h,
                                       void *ctx, int manager, uint32_t conc, uint32_t batch)
{
    seda_stage_options_t o = { .name = name,
                               .handler = h,
                               .ctx = ctx,
                               .drop = drop_cb,
                               .thread_manager = manager,
                               .concurrency = conc,
                               .batch_max = batch,
                               .queue_capacity = next_capacity };
    seda_stage_t *s = NULL;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    return s;
}

static inline void enqueue_retry(seda_stage_t *s, void *e)
{
    int r;
    while ((r = seda_stage_enqueue(s, e)) == -EAGAIN)
        sched_yield();
    CHECK_OK(r);
}

struct gate_ctx {
    _Atomic int open;
    _Atomic int entered;
    _Atomic uint64_t max_batch, events;
};

static inline int gated(void *ctx, void **events, size_t count)
{
    struct gate_ctx *g = ctx;
    atomic_store(&g->entered, 1);
    while (!atomic_load(&g->open))
        sched_yield();
    uint64_t m = atomic_load(&g->max_batch);
    if (count > m)
        atomic_store(&g->max_batch, count);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(&g->events, count);
    return 0;
}

struct producer_arg {
    seda_stage_t *stage;
    uint64_t count;
    _Atomic uint64_t *accepted; /* NULL: retry until accepted */
};

static inline void *producer(void *p)
{
    struct producer_arg *a = p;
    for (uint64_t i = 0; i < a->count; i++) {
        struct ev *e = ev_new(i, 0);
        if (!a->accepted) {
            enqueue_retry(a->stage, e);
            continue;
        }
        int r;
        while ((r = seda_stage_enqueue(a->stage, e)) == -EAGAIN)
            sched_yield();
        if (r == -EPIPE) {
            ev_free(e); /* the stage went away: ours to free */
            break;
        }
        CHECK_OK(r);
        atomic_fetch_add(a->accepted, 1);
    }
    return NULL;
}

static inline int consume_all(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(n, count);
    return 0;
}

static _Atomic int destroy_ctx_calls;
static inline void count_destroy(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&destroy_ctx_calls, 1);
}

/* The context of a handler that acts on another stage once (destroys it,
 * enqueues into it) and reports the result. */
struct destroyer_ctx {
    seda_stage_t *victim;
    _Atomic int result;
    _Atomic int done;
};

#endif /* SEDA_RUNTIME_TEST_H */
