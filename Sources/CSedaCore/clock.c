/*
 * The monotonic clock and the manual clock.
 *
 * A clock is a tag and, for a manual clock, one atomic time. The monotonic
 * clock is a static instance, so "is this clock real?" is a pointer compare
 * for any user (NULL or seda_clock_monotonic()).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal.h"
#include "seda/clock.h"

struct seda_clock {
    bool manual;
    /* Manual time. Moved with release RMWs, read with acquire loads, so that
     * a test thread that prepares state and then advances the clock publishes
     * that state to the thread that sees the new time. */
    _Atomic int64_t now;
};

static const seda_clock_t monotonic_clock = { .manual = false };

const seda_clock_t *seda_clock_monotonic(void)
{
    return &monotonic_clock;
}

int64_t seda_clock_now(const seda_clock_t *c)
{
    if (!c || !c->manual)
        return seda__now_ns();
    /* The cast drops const only for C11 compilers whose atomic_load does not
     * take a const pointer; the load does not write. */
    return atomic_load_explicit(&((seda_clock_t *)c)->now, memory_order_acquire);
}

int seda_clock_manual_create(seda_clock_t **out, int64_t start_ns)
{
    if (!out || start_ns < 0)
        return -EINVAL;
    seda_clock_t *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->manual = true;
    atomic_init(&c->now, start_ns);
    *out = c;
    return 0;
}

int seda_clock_manual_set(seda_clock_t *c, int64_t now_ns)
{
    if (!c || !c->manual)
        return -EINVAL;
    int64_t cur = atomic_load_explicit(&c->now, memory_order_relaxed);
    /* A CAS loop rather than a store: two threads setting different times
     * must leave the later one, never move the clock back. */
    do {
        if (now_ns < cur)
            return -EINVAL;
        if (now_ns == cur)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&c->now, &cur, now_ns, memory_order_release,
                                                    memory_order_relaxed));
    return 0;
}

int seda_clock_manual_advance(seda_clock_t *c, int64_t delta_ns)
{
    if (!c || !c->manual || delta_ns < 0)
        return -EINVAL;
    int64_t cur = atomic_load_explicit(&c->now, memory_order_relaxed);
    do {
        if (cur > INT64_MAX - delta_ns)
            return -EINVAL;
    } while (!atomic_compare_exchange_weak_explicit(&c->now, &cur, cur + delta_ns,
                                                    memory_order_release, memory_order_relaxed));
    return 0;
}

void seda_clock_destroy(seda_clock_t *c)
{
    if (c && c->manual)
        free(c);
}

/* ---- the fast clock for statistics ------------------------------------------
 *
 * A stage reads the clock once per batch and a producer outside the runtime
 * once per enqueue (for the queueing-delay stamp); clock_gettime costs ~25 ns
 * here, rdtsc ~10 ns. Where the kernel itself keeps time with the TSC
 * (clocksource "tsc", which it picks only for an invariant, synchronised
 * TSC), the monotonic clock is read as base + (tsc - tsc_base) * mult, with
 * mult measured against CLOCK_MONOTONIC over the first 20 ms of use. Only
 * statistics read this clock, and they only subtract its readings: a rate
 * error of 1e-4 makes a 1 ms service time 100 ns off. Timers read the real
 * clock. Elsewhere (no TSC clocksource, or a manual clock) it is
 * seda_clock_now.
 */
#if defined(__x86_64__)
#include <stdio.h>
#include <string.h>
#include <x86intrin.h>

/* FAST_BUSY: one thread is taking a calibration sample; others read the
 * clock the slow way meanwhile. */
enum { FAST_UNKNOWN = 0, FAST_BUSY, FAST_CALIBRATING, FAST_READY, FAST_UNAVAILABLE };

static _Atomic int fast_state;
static uint64_t fast_tsc0, fast_tsc_base; /* written before FAST_CALIBRATING / FAST_READY */
static int64_t fast_ns0, fast_ns_base;
static uint64_t fast_mult; /* ns per tick, 32.32 fixed point */

static bool tsc_is_clocksource(void)
{
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f)
        return false;
    char buf[32] = { 0 };
    bool tsc =
        fgets(buf, sizeof buf, f) && strncmp(buf, "tsc", 3) == 0 && (buf[3] == '\n' || buf[3] == 0);
    fclose(f);
    return tsc;
}

int64_t seda__clock_now_fast(const seda_clock_t *c)
{
    if (c && c->manual)
        return seda_clock_now(c);
    /* Acquire pairs with the release stores below: the fields are set. */
    int state = atomic_load_explicit(&fast_state, memory_order_acquire);
    if (SEDA__LIKELY(state == FAST_READY)) {
        uint64_t dt = __rdtsc() - fast_tsc_base;
        return fast_ns_base + (int64_t)(((unsigned __int128)dt * fast_mult) >> 32);
    }
    int64_t now = seda__now_ns();
    if (state == FAST_UNKNOWN) {
        int expected = FAST_UNKNOWN;
        /* One thread takes the first sample. */
        if (atomic_compare_exchange_strong(&fast_state, &expected, FAST_BUSY)) {
            if (!tsc_is_clocksource()) {
                atomic_store_explicit(&fast_state, FAST_UNAVAILABLE, memory_order_release);
            } else {
                fast_tsc0 = __rdtsc();
                fast_ns0 = seda__now_ns();
                atomic_store_explicit(&fast_state, FAST_CALIBRATING, memory_order_release);
            }
        }
    } else if (state == FAST_CALIBRATING && now - fast_ns0 >= 20000000) {
        int expected = FAST_CALIBRATING;
        if (atomic_compare_exchange_strong(&fast_state, &expected, FAST_BUSY)) {
            uint64_t tsc = __rdtsc();
            int64_t ns = seda__now_ns();
            fast_mult = (uint64_t)((((unsigned __int128)(uint64_t)(ns - fast_ns0)) << 32) /
                                   (tsc - fast_tsc0));
            fast_tsc_base = tsc;
            fast_ns_base = ns;
            atomic_store_explicit(&fast_state, FAST_READY, memory_order_release);
        }
    }
    return now;
}
#else
int64_t seda__clock_now_fast(const seda_clock_t *c)
{
    return seda_clock_now(c);
}
#endif
