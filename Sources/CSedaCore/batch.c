/* Running one batch through a stage's handler, and what it records: queueing
 * delay per event, service time, batches, errors, the queue's peak depth,
 * and batches that stalled the shared threads. */
#include <errno.h>
#include <stdlib.h>

#include "runtime_internal.h"

/* A counter bump: a plain load + store when the caller is its only writer. */
static inline void bump(_Atomic uint64_t *c, uint64_t by, bool exclusive, memory_order mo)
{
    if (exclusive)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by, mo);
    else
        atomic_fetch_add_explicit(c, by, mo);
}

/*
 * A handler that blocks on the shared threads starves every stage there. A
 * batch counts as having stalled them when it ran longer than STALL_MIN_NS
 * and more than STALL_FACTOR times the stage's mean batch time so far, stalls
 * left out of the mean (any such batch when there is no history). Why these: 100 ms is far above what
 * a preempted thread loses on a busy machine (tens of ms) yet already a
 * visible wait for everything queued behind it; 100x the mean keeps a stage
 * whose batches are steadily heavy (say 5 ms of CPU each) from being flagged
 * for ordinary variance, while a handler that sleeps or waits on I/O (10 us
 * usually, seconds now) is caught. Only a time already measured is compared:
 * no clock read is added.
 */
#define STALL_MIN_NS INT64_C(100000000)
#define STALL_FACTOR 100

static void note_stall(seda_stage_t *s, size_t k, uint64_t took)
{
    /* Relaxed: a statistic; concurrent batches (concurrency > 1) may make
     * the mean a little stale, which a factor of 100 absorbs. */
    uint64_t batches = atomic_load_explicit(&s->batches, memory_order_relaxed) -
                       atomic_load_explicit(&s->stalled_batches, memory_order_relaxed);
    uint64_t ns = atomic_load_explicit(&s->handler_ns, memory_order_relaxed) -
                  atomic_load_explicit(&s->stalled_ns, memory_order_relaxed);
    uint64_t mean = batches ? ns / batches : 0;
    if (mean && took / STALL_FACTOR <= mean)
        return;
    atomic_fetch_add_explicit(&s->stalled_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->stalled_ns, took, memory_order_relaxed);
    if (atomic_exchange_explicit(&s->stall_logged, true, memory_order_relaxed))
        return; /* once per stage; the count goes on in its statistics */
    seda__log(s->rt, SEDA_LOG_WARNING, s->name,
              "a batch of %zu event(s) ran %.1f ms on a shared thread (usually %.3f ms): "
              "its handler blocked, and every stage on the shared threads waited. "
              "A handler that blocks (sleeps, waits for I/O or a lock) belongs on a "
              "dedicated pool (C: SEDA_THREADS_DEDICATED; Swift: ThreadManager.dedicated). "
              "Every such batch is counted (stalled_batches; Swift: stalledBatches); "
              "logged once per stage.",
              k, (double)took / 1e6, (double)mean / 1e6);
}

int seda_batch_is_control(size_t index)
{
    struct seda__worker *w = seda__worker_tls;
    if (!w || !w->stage || index >= w->batch_len)
        return -EINVAL;
    return (w->stamps[index] & SEDA__STAMP_CONTROL) != 0;
}

int seda_batch_control_count(void)
{
    struct seda__worker *w = seda__worker_tls;
    if (!w || !w->stage)
        return -EINVAL;
    int n = 0;
    for (size_t i = 0; i < w->batch_len; i++)
        n += (w->stamps[i] & SEDA__STAMP_CONTROL) != 0;
    return n;
}

int seda__worker_alloc(struct seda__worker *w)
{
    w->buf = malloc(SEDA_BATCH_MAX * sizeof(void *));
    w->stamps = malloc(SEDA_BATCH_MAX * sizeof(uint32_t));
    if (w->buf && w->stamps)
        return 0;
    seda__worker_free(w);
    return -ENOMEM;
}

void seda__worker_free(struct seda__worker *w)
{
    free(w->buf);
    free(w->stamps);
    w->buf = NULL;
    w->stamps = NULL;
}

void seda__run_batch(struct seda__worker *w, seda_stage_t *s, size_t k, bool sample_depth)
{
    seda_runtime_t *rt = s->rt;
    void **events = w->buf;
    uint32_t *stamps = w->stamps;
    bool exclusive = s->concurrency == 1;
    int64_t t0 = w->last_end ? w->last_end : seda__clock_now_fast(rt->clock);
    uint32_t start_us = seda__us_stamp(t0);
    if (s->discipline == SEDA_DISCIPLINE_CODEL)
        k = seda__codel_filter(s, events, stamps, k, t0);
    if (k == 0) {
        /* Everything dropped: the handler is not called, but the queue did
         * shrink; a clogged stage draining through such batches must still
         * report it, or its parked upstream waits for ever. */
        seda__check_drained(s);
        return;
    }

    /* Queueing delay per event; stamps come in runs (one per producer
     * batch), so record each run once. */
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && stamps[j] == stamps[i])
            j++;
        uint64_t delay_us = (start_us - stamps[i]) & SEDA__STAMP_TIME;
        if (delay_us >
            SEDA__STAMP_TIME / 2) /* a stamp from "the future": clock skew between threads */
            delay_us = 0;
        seda__histogram_add(&s->queue_delay, delay_us * 1000, j - i, exclusive);
        i = j;
    }
    /* The queue's depth as this thread found it: exact when the batch was
     * full (a deep queue), otherwise this batch drained it. Reading the size
     * touches the producers' line, so callers sample it once in a while. */
    uint64_t depth = k;
    if (sample_depth) { /* the caller's batch was full: a deep queue */
        depth += seda__stage_size(s);
        /* Producers may have refilled the queue since this batch was taken
         * (the stage runs while its feeders do): what was taken plus what
         * is there now can exceed what the queues can hold at once. */
        uint64_t room = (uint64_t)seda_queue_capacity(s->queues[0]) * s->classes;
        if (depth > room)
            depth = room;
    }
    uint64_t peak = atomic_load_explicit(&s->queue_peak, memory_order_relaxed);
    while (depth > peak &&
           !atomic_compare_exchange_weak_explicit(&s->queue_peak, &peak, depth,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }

    seda_stage_t *outer = w->stage;
    uint32_t outer_us = w->batch_us;
    size_t outer_len = w->batch_len;
    w->stage = s;
    w->batch_us = start_us;
    w->batch_len = k;
    int rc = s->handler(s->ctx, events, k);
    w->stage = outer;
    w->batch_us = outer_us;
    w->batch_len = outer_len;

    int64_t t1 = seda__clock_now_fast(rt->clock);
    w->last_end = t1;
    uint64_t took = t1 > t0 ? (uint64_t)(t1 - t0) : 0;
    if (SEDA__UNLIKELY(took > (uint64_t)STALL_MIN_NS) && w->cpu_thread)
        note_stall(s, k, took);
    seda__histogram_add(&s->service_time, took / k, k, exclusive);
    bump(&s->batches, 1, exclusive, memory_order_relaxed);
    bump(&s->handler_ns, took, exclusive, memory_order_relaxed);
    if (rc < 0)
        atomic_fetch_add_explicit(&s->handler_errors, 1, memory_order_relaxed);
    /* Release, last: pairs with the acquire in collect(); everything the
     * handler enqueued is visible to whoever sees this count. */
    bump(&s->processed, k, exclusive, memory_order_release);
    seda__check_drained(s);
}
