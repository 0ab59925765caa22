/*
 * Dedicated pools (Sandstorm's thread pool per stage), for handlers that
 * block: threads of the stage's own, parked on its queues' notifier when the
 * queues are empty, resized while running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "runtime_internal.h"

struct seda__pool_thread {
    struct seda__pool_thread *next;
    struct seda_stage *stage;
    pthread_t tid;
    _Atomic bool exited;
    struct seda__worker worker;
};

static bool should_exit(seda_stage_t *s)
{
    uint32_t live = atomic_load_explicit(&s->live_threads, memory_order_seq_cst);
    while (live > atomic_load_explicit(&s->target_threads, memory_order_seq_cst)) {
        if (atomic_compare_exchange_weak_explicit(&s->live_threads, &live, live - 1,
                                                  memory_order_seq_cst, memory_order_seq_cst)) {
            /* A grow may have raised the target between our check and the
             * CAS, counting on us: then stay. */
            if (live - 1 < atomic_load_explicit(&s->target_threads, memory_order_seq_cst)) {
                atomic_fetch_add_explicit(&s->live_threads, 1, memory_order_seq_cst);
                return false;
            }
            return true;
        }
    }
    return false;
}

static void *pool_thread(void *p)
{
    struct seda__pool_thread *self = p;
    seda_stage_t *s = self->stage;
    struct seda__worker *w = &self->worker;
    seda__worker_tls = w;
    seda_notifier_t *n = s->notifier;
    unsigned since_sample = 0;
    for (;;) {
        if (should_exit(s))
            break;
        uint32_t batch_max = atomic_load_explicit(&s->batch_max, memory_order_relaxed);
        int k = seda__stage_dequeue(s, w->buf, w->stamps, batch_max);
        if (k > 0) {
            /* Sample the depth on the first batch after a wait and every 16th. */
            seda__run_batch(w, s, (size_t)k, since_sample++ % 16 == 0 && (uint32_t)k == batch_max);
            continue;
        }
        since_sample = 0;
        w->last_end = 0; /* about to wait: the next batch reads the clock */
        if (k == -EPIPE) {
            atomic_fetch_sub_explicit(&s->live_threads, 1, memory_order_acq_rel);
            break;
        }
        /* Empty: park on the queue's notifier, waking for events, for a close,
         * or for a resize (seda_stage_set_threads wakes everyone). */
        uint32_t epoch = seda_notifier_prepare(n);
        if (seda__stage_size(s) != 0 || seda__stage_is_closed(s) ||
            atomic_load(&s->live_threads) > atomic_load(&s->target_threads)) {
            seda_notifier_cancel(n);
            continue;
        }
        seda_notifier_park(n, epoch, -1);
    }
    atomic_store_explicit(&self->exited, true, memory_order_release);
    return NULL;
}

static void pool_thread_free(struct seda__pool_thread *t)
{
    seda__worker_free(&t->worker);
    free(t);
}

void seda__reap_pool(seda_stage_t *s, bool all)
{
    struct seda__pool_thread **pp = &s->threads;
    while (*pp) {
        struct seda__pool_thread *t = *pp;
        if (all || atomic_load_explicit(&t->exited, memory_order_acquire)) {
            pthread_join(t->tid, NULL);
            *pp = t->next;
            pool_thread_free(t);
        } else {
            pp = &t->next;
        }
    }
}

int seda__start_pool_thread(seda_stage_t *s)
{
    struct seda__pool_thread *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->stage = s;
    t->worker.rt = s->rt;
    int r = seda__worker_alloc(&t->worker);
    if (r < 0) {
        free(t);
        return r;
    }
    atomic_fetch_add_explicit(&s->live_threads, 1, memory_order_acq_rel);
    r = seda__thread_start(&t->tid, pool_thread, t);
    if (r < 0) {
        atomic_fetch_sub_explicit(&s->live_threads, 1, memory_order_acq_rel);
        pool_thread_free(t);
        return r;
    }
    seda__name_thread(t->tid, s->name);
    if (s->pin_cpu >= 0)
        seda__pin_thread(s->rt, t->tid, s->pin_cpu);
    t->next = s->threads;
    s->threads = t;
    return 0;
}

void seda__pool_join(seda_stage_t *s)
{
    /* Take the pool's threads, then join them without the lock: one of
     * them may be calling seda_stage_set_threads (which now sees
     * `destroyed` and returns -EPIPE). */
    pthread_mutex_lock(&s->pool_lock);
    struct seda__pool_thread *threads = s->threads;
    s->threads = NULL;
    pthread_mutex_unlock(&s->pool_lock);
    seda_notifier_wake(s->notifier, INT32_MAX);
    while (threads) { /* they drain, see -EPIPE, and exit */
        struct seda__pool_thread *t = threads;
        threads = t->next;
        pthread_join(t->tid, NULL);
        pool_thread_free(t);
    }
}

int seda_stage_set_threads(seda_stage_t *s, uint32_t n)
{
    if (s->manager != SEDA_THREADS_DEDICATED)
        return -ENOTSUP;
    if (n < 1 || n > s->concurrency)
        return -EINVAL;
    pthread_mutex_lock(&s->pool_lock);
    if (atomic_load(&s->destroyed)) {
        pthread_mutex_unlock(&s->pool_lock);
        return -EPIPE;
    }
    /* seq_cst: a store-load race with the parking thread's prepare (RMW) and
     * its read of the target, like the notifier's own protocol. */
    atomic_store_explicit(&s->target_threads, n, memory_order_seq_cst);
    seda__reap_pool(s, false);
    int r = 0;
    while (r == 0 && atomic_load(&s->live_threads) < n)
        r = seda__start_pool_thread(s);
    pthread_mutex_unlock(&s->pool_lock);
    /* Surplus threads may be parked: wake them to notice. */
    seda_notifier_wake(s->notifier, INT32_MAX);
    return r;
}
