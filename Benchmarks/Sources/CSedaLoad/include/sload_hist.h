/*
 * A latency histogram in the manner of HdrHistogram: log-linear buckets,
 * 64 per power of two above 128 ns (relative error under 1.6 %), exact below,
 * from 0 to 2^63 ns. Fixed size (30 KB), no allocation after create.
 *
 * Not thread-safe: one writer at a time; merge per-thread histograms with
 * sload_hist_merge once the writers are done.
 */
#ifndef SLOAD_HIST_H
#define SLOAD_HIST_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sload_hist sload_hist_t;

/* A zeroed histogram, or NULL when out of memory. Free with sload_hist_destroy. */
sload_hist_t *sload_hist_create(void);
void sload_hist_destroy(sload_hist_t *h);
void sload_hist_reset(sload_hist_t *h);

/* Records one value (ns; negative values count as 0). */
void sload_hist_record(sload_hist_t *h, int64_t ns);

/* Adds every count of `from` into `into`. */
void sload_hist_merge(sload_hist_t *into, const sload_hist_t *from);

uint64_t sload_hist_count(const sload_hist_t *h);
/* Exact extremes and mean of the recorded values (0 when empty). */
int64_t sload_hist_min(const sload_hist_t *h);
int64_t sload_hist_max(const sload_hist_t *h);
double sload_hist_mean(const sload_hist_t *h);

/*
 * The value at quantile q (0..1): the upper edge of the bucket holding the
 * ceil(q * count)-th smallest value, capped at the exact maximum.
 * 0 when empty.
 */
int64_t sload_hist_quantile(const sload_hist_t *h, double q);

/*
 * Iterates over the non-empty buckets in increasing order. Start with
 * *cursor = 0; each call stores one bucket's range [lo, hi) in ns and its
 * count and returns 1, or returns 0 when there are no more.
 */
int sload_hist_next(const sload_hist_t *h, size_t *cursor, int64_t *lo, int64_t *hi, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif
