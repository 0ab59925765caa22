/*
 * Taking stages and the runtime down: handing queued events back, finishing
 * a destroyed stage (its threads done, its destroy callback called), draining
 * the whole graph to quiescence (see "Quiescence" in runtime_internal.h),
 * seda_runtime_shutdown and seda_runtime_destroy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime_internal.h"

/* Gives every queued event of s to its drop callback, control events to
 * drop_control if the stage has one (counted). */
static void hand_back_all(seda_stage_t *s)
{
    void *ev;
    uint32_t stamp;
    uint64_t n = 0;
    int r;
    while ((r = seda__stage_dequeue(s, &ev, &stamp, 1)) != -EPIPE) {
        if (r == 1) {
            if ((stamp & SEDA__STAMP_CONTROL) && s->drop_control)
                s->drop_control(s->ctx, ev);
            else
                s->drop(s->ctx, ev);
            n++;
        } else {
            sched_yield(); /* a producer is publishing an event it claimed */
        }
    }
    /* Release: like `processed`, read by collect(). */
    atomic_fetch_add_explicit(&s->handed_back, n, memory_order_release);
}

void seda__stage_hold(seda_stage_t *s)
{
    /* seq_cst, like a queue's tail: the holder's "accepted" (collect). */
    atomic_fetch_add_explicit(&s->held_in, 1, memory_order_seq_cst);
}

void seda__stage_unhold(seda_stage_t *s)
{
    /* Release, like `processed`: whatever the held work enqueued before is
     * counted by then (pairs with the acquire load in collect). */
    atomic_fetch_add_explicit(&s->held_out, 1, memory_order_release);
}

static void sleep_briefly(void)
{
    struct timespec ts = { 0, 200000 }; /* 200 us */
    nanosleep(&ts, NULL);
}

/* Waits until no shared-pool thread runs s (the queue is closed). */
static void wait_idle(seda_stage_t *s, bool drain)
{
    for (;;) {
        int state = atomic_load(&s->rt->state);
        if (!drain || state >= SEDA__RT_STOPPED)
            hand_back_all(s); /* nobody else will take them */
        if (seda__stage_size(s) == 0 && atomic_load(&s->active) == 0)
            return;
        sleep_briefly();
    }
}

void seda__stage_finish(seda_stage_t *s, int mode)
{
    seda__stage_close(s);
    seda__unpark_upstream(s); /* they run, and find this stage closed */
    seda__unpark_self(s);
    if (mode == SEDA_SHUTDOWN_HAND_BACK)
        hand_back_all(s);
    if (s->manager == SEDA_THREADS_SHARED)
        wait_idle(s, mode == SEDA_SHUTDOWN_DRAIN);
    else
        seda__pool_join(s);
    hand_back_all(s);
    if (s->destroy_ctx)
        s->destroy_ctx(s->ctx);
    /* Release: pairs with the acquire in seda_runtime_shutdown. */
    atomic_store_explicit(&s->finished, true, memory_order_release);
}

/* One collection for the quiescence check: fills sig[] with every stage's
 * counters and says whether each stage has processed all it accepted. */
static bool collect(seda_stage_t **all, size_t n, uint64_t *sig)
{
    bool balanced = true;
    for (size_t i = 0; i < n; i++) {
        seda_stage_t *s = all[i];
        /* Done first, accepted second: done(t1) == accepted(t2) with t1 < t2
         * means nothing arrived or was pending in between. */
        uint64_t done = atomic_load_explicit(&s->processed, memory_order_acquire) +
                        atomic_load_explicit(&s->handed_back, memory_order_acquire) +
                        atomic_load_explicit(&s->dropped, memory_order_acquire) +
                        atomic_load_explicit(&s->held_out, memory_order_acquire);
        uint64_t accepted =
            seda__stage_accepted(s) + atomic_load_explicit(&s->held_in, memory_order_seq_cst);
        sig[2 * i] = done;
        sig[2 * i + 1] = accepted;
        if (done != accepted)
            balanced = false;
    }
    return balanced;
}

static int drain_graph(seda_runtime_t *rt, int64_t timeout_ns)
{
    size_t n;
    seda_stage_t **all = seda__snapshot_stages(rt, &n);
    uint64_t *a = calloc(2 * n + 1, sizeof *a), *b = calloc(2 * n + 1, sizeof *b);
    int r = -ENOMEM;
    if (all && a && b) {
        int64_t deadline = timeout_ns < 0 ? INT64_MAX : seda__add_sat(seda__now_ns(), timeout_ns);
        bool prev = collect(all, n, a);
        for (;;) {
            sleep_briefly();
            bool now = collect(all, n, b);
            if (prev && now && memcmp(a, b, 2 * n * sizeof *a) == 0) {
                r = 0;
                break;
            }
            if (deadline != INT64_MAX && seda__now_ns() >= deadline) {
                r = -ETIMEDOUT;
                break;
            }
            uint64_t *t = a;
            a = b;
            b = t;
            prev = now;
        }
    }
    for (size_t i = 0; i < n; i++)
        seda_stage_release(all[i]);
    free(all);
    free(a);
    free(b);
    return r;
}

int seda_runtime_shutdown(seda_runtime_t *rt, int mode, int64_t timeout_ns)
{
    if (mode != SEDA_SHUTDOWN_DRAIN && mode != SEDA_SHUTDOWN_HAND_BACK)
        return -EINVAL;
    if (seda__worker_of(rt))
        return -EDEADLK;
    int expected = SEDA__RT_RUNNING;
    if (!atomic_compare_exchange_strong(&rt->state, &expected, SEDA__RT_DRAINING))
        return -EPIPE;
    int r = 0;
    if (mode == SEDA_SHUTDOWN_DRAIN)
        r = drain_graph(rt, timeout_ns);
    atomic_store(&rt->state, SEDA__RT_STOPPING);

    size_t n;
    seda_stage_t **all;
    /* A small array; without it nothing below can run, so wait for memory
     * rather than leave the runtime half stopped. */
    while (!(all = seda__snapshot_stages(rt, &n)))
        sleep_briefly();
    /* Close every queue first, so that handlers still running cannot feed
     * stages already emptied; then hand back what is queued. */
    for (size_t i = 0; i < n; i++)
        seda__stage_close(all[i]);
    for (size_t i = 0; i < n; i++)
        hand_back_all(all[i]);
    /* Parked stages back on the run queue (no new parking from STOPPING on),
     * so that every instance finishes and the threads can stop. */
    for (size_t i = 0; i < n; i++)
        seda__unpark_upstream(all[i]);
    seda__scheduler_stop(rt);
    atomic_store(&rt->state, SEDA__RT_STOPPED);
    /* The run queue may still hold scheduled instances: drop their refs. */
    void *item;
    while (seda_queue_dequeue(rt->run_queue, &item) == 0) {
        seda_stage_t *s = item;
        atomic_fetch_sub(&s->active, 1);
        seda_stage_release(s);
    }
    for (size_t i = 0; i < n; i++) {
        seda_stage_t *s = all[i];
        if (!atomic_exchange(&s->destroyed, true)) {
            seda__stage_finish(s, SEDA_SHUTDOWN_HAND_BACK);
            seda__retire(s); /* keeps the runtime's reference until destroy */
        } else {
            /* A seda_stage_destroy on another thread is taking it down: its
             * handler may still run and its destroy callback is still to
             * come. The promise is that both are over when we return. That
             * destroy cannot be waiting for us: it waits only for the
             * stage's threads, which see its closed queue and stop. */
            while (!atomic_load_explicit(&s->finished, memory_order_acquire))
                sleep_briefly();
        }
        seda_stage_release(s);
    }
    free(all);
    atomic_store(&rt->state, SEDA__RT_DONE);
    return r;
}

void seda_runtime_destroy(seda_runtime_t *rt)
{
    if (!rt)
        return;
    if (seda__worker_of(rt)) {
        fprintf(stderr, "seda_runtime_destroy called from one of the runtime's own threads\n");
        abort(); /* it would free what this thread runs on */
    }
    seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0);
    /* A shutdown running on another thread: wait until it is done with rt,
     * every stage finished. */
    while (atomic_load(&rt->state) != SEDA__RT_DONE)
        sleep_briefly();
    seda__release_retired(rt);
    /* Freed now, or when the last stage handle still held elsewhere goes. */
    seda__runtime_release(rt);
}
