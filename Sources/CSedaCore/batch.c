/* Running one batch through a stage's handler, and what it records: queueing
 * delay per event, service time, batches, errors, the queue's peak depth. */
#include "runtime_internal.h"

void seda__run_batch(struct seda__worker *w, seda_stage_t *s, void **events, uint32_t *stamps,
                     size_t k, bool sample_depth)
{
    seda_runtime_t *rt = s->rt;
    bool exclusive = s->concurrency == 1;
    int64_t t0 = w->last_end ? w->last_end : seda__clock_now_fast(rt->clock);
    uint32_t start_us = seda__us_stamp(t0);
    if (s->discipline == SEDA_DISCIPLINE_CODEL)
        k = seda__codel_filter(s, events, stamps, k, t0);
    if (k == 0)
        return; /* everything dropped: the handler is not called */

    /* Queueing delay per event; stamps come in runs (one per producer
     * batch), so record each run once. */
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && stamps[j] == stamps[i])
            j++;
        uint64_t delay_us = (start_us - stamps[i]) & SEDA__STAMP_TIME;
        if (delay_us > SEDA__STAMP_TIME / 2) /* a stamp from "the future": clock skew between threads */
            delay_us = 0;
        seda__histogram_add(&s->queue_delay, delay_us * 1000, j - i, exclusive);
        i = j;
    }
    /* The queue's depth as this thread found it: exact when the batch was
     * full (a deep queue), otherwise this batch drained it. Reading the size
     * touches the producers' line, so callers sample it once in a while. */
    uint64_t depth = k;
    if (sample_depth) /* the caller's batch was full: a deep queue */
        depth += seda__stage_size(s);
    uint64_t peak = atomic_load_explicit(&s->queue_peak, memory_order_relaxed);
    while (depth > peak && !atomic_compare_exchange_weak_explicit(&s->queue_peak, &peak, depth,
                                                                  memory_order_relaxed,
                                                                  memory_order_relaxed)) {
    }

    seda_stage_t *outer = w->stage;
    uint32_t outer_us = w->batch_us;
    w->stage = s;
    w->batch_us = start_us;
    int rc = s->handler(s->ctx, events, k);
    w->stage = outer;
    w->batch_us = outer_us;

    int64_t t1 = seda__clock_now_fast(rt->clock);
    w->last_end = t1;
    uint64_t took = t1 > t0 ? (uint64_t)(t1 - t0) : 0;
    seda__histogram_add(&s->service_time, took / k, k, exclusive);
    seda__bump(&s->batches, 1, exclusive, memory_order_relaxed);
    seda__bump(&s->handler_ns, took, exclusive, memory_order_relaxed);
    if (rc < 0)
        atomic_fetch_add_explicit(&s->handler_errors, 1, memory_order_relaxed);
    /* Release, last: pairs with the acquire in collect(); everything the
     * handler enqueued is visible to whoever sees this count. */
    seda__bump(&s->processed, k, exclusive, memory_order_release);
    seda__check_drained(s);
}
