/*
 * Statistics: the log-linear histogram and its quantiles, and a stage's
 * counters against a manual clock (deterministic times).
 */
#include <math.h>

#include "runtime_test.h"

/* ---- statistics against a manual clock: deterministic times -------------- */

static seda_clock_t *manual;

static int takes_5ms(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    seda_clock_manual_advance(manual, 5000000 * (int64_t)count);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(n, count);
    return count == 3 ? -1 : 0; /* a handler error, counted */
}

static void test_stats_manual_clock(void)
{
    reset_counts();
    CHECK_OK(seda_clock_manual_create(&manual, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = manual };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    CHECK(seda_runtime_clock(rt) == manual);
    _Atomic uint64_t n = 0;
    seda_stage_t *s = make_stage(rt, "timed", takes_5ms, &n, SEDA_THREADS_DEDICATED, 1, 64);
    void *batch[3] = { ev_new(1, 0), ev_new(2, 0), ev_new(3, 0) };
    /* The handler moves the clock 5 ms per event, so service times are
     * exact whatever the machine is doing. */
    CHECK_RC(seda_stage_enqueue_many(s, batch, 3), 3);
    WAIT_UNTIL(atomic_load(&n) == 3);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.processed, 3);
    CHECK_EQ(st.handler_ns, 15000000);
    CHECK_EQ(st.service_time.count, 3);
    uint64_t p50 = seda_histogram_quantile(&st.service_time, 0.5);
    CHECK(p50 >= 5000000 * 7 / 8 && p50 <= 5000000);
    CHECK_EQ(st.service_time.max_ns, 5000000);
    CHECK_EQ(st.handler_errors, st.batches == 1 ? 1 : 0);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    seda_clock_destroy(manual);
}

static void test_histogram(void)
{
    CHECK_EQ(seda_histogram_bucket(0), 0);
    CHECK_EQ(seda_histogram_bucket(7), 7);
    for (uint64_t v = 1; v < (1ull << 40); v = v * 3 + 1) {
        uint32_t b = seda_histogram_bucket(v);
        CHECK(seda_histogram_bucket_max(b) >= v);
        CHECK(b == 0 || seda_histogram_bucket_max(b - 1) < v);
        CHECK(seda_histogram_bucket_max(b) - v <= v / 8);
    }
    CHECK(seda_histogram_bucket(UINT64_MAX) < SEDA_HISTOGRAM_BUCKETS);
    static seda_histogram_snapshot_t h;
    memset(&h, 0, sizeof h);
    for (uint64_t v = 1; v <= 100; v++) {
        h.buckets[seda_histogram_bucket(v * 1000)]++;
        h.count++;
    }
    h.max_ns = 100000;
    uint64_t p90 = seda_histogram_quantile(&h, 0.9);
    CHECK(p90 >= 90000 && p90 <= 90000 + 90000 / 8);
    CHECK_EQ(seda_histogram_quantile(&h, 1.0), 100000);
    /* Out of range and NaN (a NaN used to reach a float-to-integer
     * conversion: undefined behaviour, flagged by UBSan). */
    uint64_t lowest = seda_histogram_quantile(&h, 0.0);
    CHECK(lowest >= 1000 && lowest <= 1000 + 1000 / 8);
    CHECK_EQ(seda_histogram_quantile(&h, -1.0), lowest);
    CHECK_EQ(seda_histogram_quantile(&h, NAN), lowest);
    CHECK_EQ(seda_histogram_quantile(&h, -NAN), lowest);
    CHECK_EQ(seda_histogram_quantile(&h, INFINITY), 100000);
    CHECK_EQ(seda_histogram_quantile(&h, -INFINITY), lowest);
}

int main(void)
{
    test_histogram();
    test_stats_manual_clock();
    puts("stats: ok");
    return 0;
}
