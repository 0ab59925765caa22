/*
 * The stage object (include/seda/runtime.h): creation and registration,
 * references, accessors, statistics, and destroy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "runtime_internal.h"

/* The stage whose handler this thread runs now, or NULL. */
static inline seda_stage_t *current_stage(void)
{
    struct seda__worker *w = seda__worker_tls;
    return w ? w->stage : NULL;
}

static void stage_free(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    free(s->more_edges);
    free(s->paused);
    /* Destroy or shutdown handed everything back, and the destroy callback
     * may have freed ctx: the queue is empty and gets no drop callback. */
    seda__stage_free_queues(s);
    pthread_mutex_destroy(&s->edge_lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->codel_lock);
    free(s);
    seda__runtime_release(rt);
}

void seda_stage_retain(seda_stage_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void seda_stage_release(seda_stage_t *s)
{
    if (!s)
        return;
    /* acq_rel: every use of the stage by this thread happens before the free
     * by whichever thread drops the last reference. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        stage_free(s);
}

const char *seda_stage_name(const seda_stage_t *s)
{
    return s->name;
}

size_t seda_stage_queue_length(const seda_stage_t *s)
{
    return seda__stage_size(s);
}

size_t seda_stage_queue_capacity(const seda_stage_t *s)
{
    return seda_queue_capacity(s->queues[0]); /* every class's queue is this size */
}

int seda_stage_set_batch_max(seda_stage_t *s, uint32_t n)
{
    if (n < 1 || n > SEDA_BATCH_MAX)
        return -EINVAL;
    atomic_store_explicit(&s->batch_max, n, memory_order_relaxed);
    return 0;
}

void seda_stage_stats(const seda_stage_t *cs, seda_stage_stats_t *out)
{
    seda_stage_t *s = (seda_stage_t *)cs;
    out->enqueued = seda__stage_accepted(s);
    out->processed = atomic_load_explicit(&s->processed, memory_order_acquire);
    out->handed_back = atomic_load_explicit(&s->handed_back, memory_order_acquire);
    out->dropped = atomic_load_explicit(&s->dropped, memory_order_acquire);
    out->pauses = atomic_load_explicit(&s->pauses, memory_order_relaxed);
    out->clogged = (uint32_t)atomic_load_explicit(&s->clogged, memory_order_relaxed);
    out->rejected_full = atomic_load_explicit(&s->rejected_full, memory_order_relaxed);
    out->rejected_closed = atomic_load_explicit(&s->rejected_closed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
    out->handler_errors = atomic_load_explicit(&s->handler_errors, memory_order_relaxed);
    out->handler_ns = atomic_load_explicit(&s->handler_ns, memory_order_relaxed);
    out->stalled_batches = atomic_load_explicit(&s->stalled_batches, memory_order_relaxed);
    out->queue_length = seda__stage_size(s);
    out->queue_peak = atomic_load_explicit(&s->queue_peak, memory_order_relaxed);
    if (out->queue_peak < out->queue_length)
        out->queue_peak = out->queue_length;
    out->threads = s->manager == SEDA_THREADS_DEDICATED
                       ? atomic_load_explicit(&s->live_threads, memory_order_relaxed)
                       : 0;
    out->concurrency = s->manager == SEDA_THREADS_DEDICATED
                           ? atomic_load_explicit(&s->target_threads, memory_order_relaxed)
                           : s->concurrency;
    out->batch_max = atomic_load_explicit(&s->batch_max, memory_order_relaxed);
    seda__histogram_snapshot(&s->queue_delay, &out->queue_delay);
    seda__histogram_snapshot(&s->service_time, &out->service_time);
}

/*
 * Destroys in progress from handlers: "the handler of `from` waits until
 * `to` is finished" (its threads done with its handler). A destroy from a
 * handler that some stage being destroyed waits for, through a chain of such
 * waits, would close a cycle: every handler of the cycle waiting for the
 * next to return. Such a destroy is refused. Each entry lives on the stack of
 * the thread that destroys; the list is process-wide (stages of different
 * runtimes may destroy each other) and short (one entry per destroy running).
 */
struct destroy_wait {
    seda_stage_t *from, *to;
    struct destroy_wait *next;
    bool seen; /* marks of one search, under destroy_lock */
};

static pthread_mutex_t destroy_lock = PTHREAD_MUTEX_INITIALIZER;
static struct destroy_wait *destroy_waits;

/* Does a handler of `x` wait, directly or through other destroys, for
 * `target`'s handler? destroy_lock held. */
static bool waits_for(seda_stage_t *x, seda_stage_t *target)
{
    if (x == target)
        return true;
    for (struct destroy_wait *w = destroy_waits; w; w = w->next) {
        if (w->from == x && !w->seen) {
            w->seen = true;
            if (waits_for(w->to, target))
                return true;
        }
    }
    return false;
}

int seda_stage_destroy(seda_stage_t *s, int mode)
{
    if (mode != SEDA_SHUTDOWN_DRAIN && mode != SEDA_SHUTDOWN_HAND_BACK)
        return -EINVAL;
    /* A shared-pool thread would wait for a turn of s that may sit in its own
     * run-next slot, or need the very thread that waits. */
    struct seda__worker *w = seda__worker_of(s->rt);
    if (s->manager == SEDA_THREADS_SHARED && w && w->cpu_thread)
        return -EDEADLK;
    /* A handler destroying s waits for s's handlers: refused if one of them
     * waits (through other destroys) for this handler, s's own included. */
    seda_stage_t *me = current_stage();
    struct destroy_wait wait = { .from = me, .to = s };
    pthread_mutex_lock(&destroy_lock);
    if (me) {
        bool cycle = waits_for(s, me);
        for (struct destroy_wait *x = destroy_waits; x; x = x->next)
            x->seen = false;
        if (cycle) {
            pthread_mutex_unlock(&destroy_lock);
            return -EDEADLK;
        }
    }
    if (atomic_exchange(&s->destroyed, true)) {
        pthread_mutex_unlock(&destroy_lock);
        return -EPIPE;
    }
    if (me) {
        wait.next = destroy_waits;
        destroy_waits = &wait;
    }
    pthread_mutex_unlock(&destroy_lock);

    seda__stage_finish(s, mode);

    if (me) {
        pthread_mutex_lock(&destroy_lock);
        struct destroy_wait **pp = &destroy_waits;
        while (*pp != &wait)
            pp = &(*pp)->next;
        *pp = wait.next;
        pthread_mutex_unlock(&destroy_lock);
    }
    seda__unregister(s);
    seda_stage_release(s); /* the runtime's reference */
    return 0;
}

int seda_stage_create(seda_runtime_t *rt, const seda_stage_options_t *o, seda_stage_t **out)
{
    if (!rt || !o || !out || !o->name || !o->name[0] || strlen(o->name) > SEDA_STAGE_NAME_MAX ||
        !o->handler || !o->drop || o->batch_max > SEDA_BATCH_MAX ||
        (o->thread_manager != SEDA_THREADS_SHARED && o->thread_manager != SEDA_THREADS_DEDICATED))
        return -EINVAL;
    uint32_t conc = o->concurrency ? o->concurrency : 1;
    uint32_t maxt = o->thread_manager == SEDA_THREADS_DEDICATED
                        ? (o->max_threads ? o->max_threads : conc)
                        : conc;
    if (maxt < conc)
        return -EINVAL;
    if (o->discipline != SEDA_DISCIPLINE_FIFO && o->discipline != SEDA_DISCIPLINE_CODEL)
        return -EINVAL;
    if (o->pause_when_clogged && o->thread_manager != SEDA_THREADS_SHARED)
        return -EINVAL;
    if (o->discipline == SEDA_DISCIPLINE_CODEL &&
        (o->codel_target_ns < 0 || o->codel_interval_ns < 0))
        return -EINVAL;
    if (o->bind_to_thread && (o->thread_manager != SEDA_THREADS_SHARED || conc != 1 ||
                              o->thread_index >= rt->cpu_threads))
        return -EINVAL;

    uint32_t classes = o->classes ? o->classes : 1;
    if (classes > SEDA_STAGE_MAX_CLASSES)
        return -EINVAL;
    seda_stage_t *s = seda__alloc_aligned(sizeof *s);
    if (!s)
        return -ENOMEM;
    int r = seda_notifier_create(&s->notifier, 0);
    for (uint32_t c = 0; r == 0 && c < classes; c++) {
        r = seda_queue_create(&s->queues[c], o->queue_capacity ? o->queue_capacity : 1024,
                              s->notifier);
        if (r == 0)
            s->classes = c + 1;
    }
    if (r < 0) {
        seda__stage_free_queues(s);
        free(s);
        return r;
    }
    s->rt = rt;
    s->handler = o->handler;
    s->ctx = o->ctx;
    s->drop = o->drop;
    s->drop_control = o->drop_control;
    s->destroy_ctx = o->destroy;
    atomic_init(&s->batch_max, o->batch_max ? o->batch_max : 64);
    s->manager = o->thread_manager;
    s->concurrency = o->thread_manager == SEDA_THREADS_DEDICATED ? maxt : conc;
    s->pin_cpu = o->thread_manager == SEDA_THREADS_DEDICATED && o->pin_to_cpu ? o->pin_cpu : -1;
    s->home = o->bind_to_thread ? seda__loop_of(rt, o->thread_index) : NULL;
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->pause_when_clogged = o->pause_when_clogged != 0;
    s->discipline = o->discipline;
    s->codel_target = o->codel_target_ns ? o->codel_target_ns : 5000000;
    s->codel_interval = o->codel_interval_ns ? o->codel_interval_ns : 100000000;
    pthread_mutex_init(&s->edge_lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->codel_lock, NULL);
    atomic_init(&s->refs, 2); /* the caller's and the runtime's */

    pthread_mutex_lock(&rt->lock);
    r = 0;
    if (atomic_load(&rt->state) != SEDA__RT_RUNNING)
        r = -EPIPE;
    for (seda_stage_t *t = rt->stages; r == 0 && t; t = t->next)
        if (strcmp(t->name, s->name) == 0)
            r = -EEXIST;
    if (r == 0 && s->manager == SEDA_THREADS_SHARED) {
        if (rt->concurrency_sum + s->concurrency > rt->run_queue_capacity)
            r = -ENOSPC;
        else
            rt->concurrency_sum += s->concurrency;
    }
    if (r == 0 && s->manager == SEDA_THREADS_DEDICATED) {
        atomic_store(&s->target_threads, conc);
        pthread_mutex_lock(&s->pool_lock);
        for (uint32_t i = 0; r == 0 && i < conc; i++)
            r = seda__start_pool_thread(s);
        if (r < 0) {
            seda__stage_close(s);
            seda__reap_pool(s, true);
        }
        pthread_mutex_unlock(&s->pool_lock);
    }
    if (r == 0) {
        s->id = ++rt->last_id;
        atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
        if (rt->last)
            rt->last->next = s;
        else
            rt->stages = s;
        rt->last = s;
    }
    pthread_mutex_unlock(&rt->lock);
    if (r < 0) {
        seda__stage_free_queues(s); /* empty: nothing was accepted */
        pthread_mutex_destroy(&s->edge_lock);
        pthread_mutex_destroy(&s->pool_lock);
        pthread_mutex_destroy(&s->codel_lock);
        free(s);
        return r;
    }
    *out = s;
    return 0;
}
