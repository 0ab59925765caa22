/* Log-linear latency histograms (see include/seda/stats.h). */
#include <stdatomic.h>

#include "internal.h"
#include "seda/stats.h"

uint32_t seda_histogram_bucket(uint64_t v)
{
    if (v < 8)
        return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* e >= 3 */
    uint32_t sub = (uint32_t)(v >> (e - 3)) & 7u;
    return (e - 2) * 8 + sub;
}

uint64_t seda_histogram_bucket_max(uint32_t b)
{
    if (b < 8)
        return b;
    if (b >= SEDA_HISTOGRAM_BUCKETS)
        return UINT64_MAX;
    uint32_t e = b / 8 + 2, sub = b % 8;
    uint64_t lower = (uint64_t)(8 + sub) << (e - 3);
    return lower + ((uint64_t)1 << (e - 3)) - 1;
}

uint64_t seda_histogram_quantile(const seda_histogram_snapshot_t *h, double q)
{
    uint64_t total = 0;
    for (uint32_t b = 0; b < SEDA_HISTOGRAM_BUCKETS; b++)
        total += h->buckets[b];
    if (total == 0)
        return 0;
    if (!(q >= 0)) /* below 0, or NaN (every comparison with NaN is false) */
        q = 0;
    if (q > 1)
        q = 1;
    /* The rank-th sample (1-based), nearest-rank definition. */
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t b = 0; b < SEDA_HISTOGRAM_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t v = seda_histogram_bucket_max(b);
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    return h->max_ns;
}

void seda__histogram_add(seda__histogram_t *h, uint64_t v, uint64_t n, bool exclusive)
{
    uint32_t b = seda_histogram_bucket(v);
    if (exclusive) {
        /* One writer at a time (ordered by the stage's scheduling atomics):
         * load + store instead of a locked RMW; readers see either value. */
#define BUMP(field, by)                                                                          \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (by), \
                          memory_order_relaxed)
        BUMP(h->buckets[b], n);
        BUMP(h->count, n);
        BUMP(h->sum, v * n);
#undef BUMP
    } else {
        atomic_fetch_add_explicit(&h->buckets[b], n, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->count, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->sum, v * n, memory_order_relaxed);
    }
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (v > m && !atomic_compare_exchange_weak_explicit(&h->max, &m, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
    }
}

void seda__histogram_snapshot(const seda__histogram_t *h, seda_histogram_snapshot_t *out)
{
    seda__histogram_t *m = (seda__histogram_t *)h;
    uint64_t count = 0;
    for (uint32_t b = 0; b < SEDA_HISTOGRAM_BUCKETS; b++) {
        out->buckets[b] = atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
        count += out->buckets[b];
    }
    /* The bucket sum is the count the quantiles see; keep the two consistent. */
    out->count = count;
    out->sum_ns = atomic_load_explicit(&m->sum, memory_order_relaxed);
    out->max_ns = atomic_load_explicit(&m->max, memory_order_relaxed);
}
