/*
 * Statistics kept by the C core: latency histograms and per-stage counters,
 * cheap enough to stay on in production (a few relaxed stores per batch and a
 * bucket increment per event; no lock, no allocation).
 */
#ifndef SEDA_STATS_H
#define SEDA_STATS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Log-linear buckets over nanoseconds: values 0..7 exactly, then 8 buckets per
 * power of two, so any value is reported within 12.5% (an HDR histogram with
 * 3 significant bits). 496 buckets cover the whole uint64_t range.
 */
#define SEDA_HISTOGRAM_BUCKETS 496

/* A consistent-enough copy of a histogram (taken without stopping writers). */
typedef struct seda_histogram_snapshot {
    uint64_t count;  /* samples */
    uint64_t sum_ns; /* sum of the samples, for the mean */
    uint64_t max_ns;
    uint64_t buckets[SEDA_HISTOGRAM_BUCKETS];
} seda_histogram_snapshot_t;

/* The bucket a value falls in, and the largest value that bucket holds. */
uint32_t seda_histogram_bucket(uint64_t value_ns);
uint64_t seda_histogram_bucket_max(uint32_t bucket);

/*
 * The value at quantile q (0 <= q <= 1) of a snapshot: the upper bound of the
 * bucket holding it, capped at max_ns. 0 for an empty snapshot. q below 0
 * (or NaN) counts as 0, above 1 as 1.
 */
uint64_t seda_histogram_quantile(const seda_histogram_snapshot_t *h, double q);

/* Everything a stage counts. Filled by seda_stage_stats. */
typedef struct seda_stage_stats {
    uint64_t enqueued;        /* events the stage's queue accepted */
    uint64_t processed;       /* events the handler was given and has returned from */
    uint64_t handed_back;     /* events given to the drop callback at destroy/shutdown */
    uint64_t dropped;         /* events the queue discipline dropped (to the drop callback) */
    uint64_t pauses;          /* times the stage waited for a clogged downstream stage */
    uint64_t rejected_full;   /* enqueues refused: queue full */
    uint64_t rejected_closed; /* enqueues refused: stage closed or runtime stopping */
    uint64_t batches;         /* handler calls */
    uint64_t handler_errors;  /* handler calls that returned an error */
    uint64_t handler_ns;      /* time spent inside the handler */
    /* Batches on the shared threads that ran > 100 ms and > 100x the stage's
     * mean batch time (stalls left out): its handler blocked every stage
     * there (logged once, see seda_runtime_options.log). Always 0 for a
     * dedicated pool. */
    uint64_t stalled_batches;
    uint64_t queue_length; /* events waiting now */
    uint64_t queue_peak;   /* longest queue the stage's threads sampled (at a turn's start) */
    uint32_t threads;      /* dedicated pool: live threads; shared pool: 0 */
    uint32_t concurrency;  /* how many threads may run the handler at once */
    uint32_t batch_max;    /* the largest batch the handler gets now */
    uint32_t clogged;      /* 1 while clogged (an enqueue found the queue full, not yet drained) */
    seda_histogram_snapshot_t
        queue_delay; /* enqueue -> handler start, per event (see seda_stage_enqueue) */
    seda_histogram_snapshot_t service_time; /* handler time per event (batch time / batch size) */
} seda_stage_stats_t;

#ifdef __cplusplus
}
#endif

#endif /* SEDA_STATS_H */
