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
