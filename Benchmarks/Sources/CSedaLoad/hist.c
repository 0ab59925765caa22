/* Log-linear latency histogram (see sload_hist.h). */
#include "sload_hist.h"

#include <stdlib.h>
#include <string.h>

/* Values below 128 get a bucket each; above, 64 buckets per power of two. */
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)     /* 64 */
#define LINEAR (2u * SUB)        /* 128 */
#define BUCKETS (LINEAR + (63u - SUB_BITS) * SUB)

struct sload_hist {
    uint64_t total;
    int64_t min, max;
    double sum;
    uint64_t counts[BUCKETS];
};

static size_t index_of(uint64_t v)
{
    if (v < LINEAR)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS; /* >= 1: v >> shift lies in [64, 128) */
    return LINEAR + (size_t)(shift - 1) * SUB + (size_t)((v >> shift) - SUB);
}

/* [lo, hi) of bucket i. */
static void range_of(size_t i, uint64_t *lo, uint64_t *hi)
{
    if (i < LINEAR) {
        *lo = i;
        *hi = i + 1;
        return;
    }
    size_t k = i - LINEAR;
    unsigned shift = (unsigned)(k / SUB) + 1;
    uint64_t top = SUB + k % SUB;
    *lo = top << shift;
    *hi = (top + 1) << shift;
    if (*hi < *lo) /* the last bucket reaches 2^64 */
        *hi = UINT64_MAX;
}

sload_hist_t *sload_hist_create(void)
{
    sload_hist_t *h = calloc(1, sizeof *h);
    return h;
}

void sload_hist_destroy(sload_hist_t *h) { free(h); }

void sload_hist_reset(sload_hist_t *h) { memset(h, 0, sizeof *h); }

void sload_hist_record(sload_hist_t *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    if (h->total == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->total++;
    h->sum += (double)ns;
    h->counts[index_of((uint64_t)ns)]++;
}

void sload_hist_merge(sload_hist_t *into, const sload_hist_t *from)
{
    if (from->total == 0)
        return;
    if (into->total == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->total += from->total;
    into->sum += from->sum;
    for (size_t i = 0; i < BUCKETS; i++)
        into->counts[i] += from->counts[i];
}

uint64_t sload_hist_count(const sload_hist_t *h) { return h->total; }
int64_t sload_hist_min(const sload_hist_t *h) { return h->total ? h->min : 0; }
int64_t sload_hist_max(const sload_hist_t *h) { return h->max; }
double sload_hist_mean(const sload_hist_t *h) { return h->total ? h->sum / (double)h->total : 0.0; }

int64_t sload_hist_quantile(const sload_hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    double want = q * (double)h->total;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            range_of(i, &lo, &hi);
            int64_t v = (int64_t)(hi - 1);
            return v > h->max ? h->max : (v < h->min ? h->min : v);
        }
    }
    return h->max;
}

int sload_hist_next(const sload_hist_t *h, size_t *cursor, int64_t *lo, int64_t *hi, uint64_t *count)
{
    for (size_t i = *cursor; i < BUCKETS; i++) {
        if (h->counts[i] == 0)
            continue;
        uint64_t l, u;
        range_of(i, &l, &u);
        *lo = (int64_t)l;
        *hi = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
        *count = h->counts[i];
        *cursor = i + 1;
        return 1;
    }
    *cursor = BUCKETS;
    return 0;
}
