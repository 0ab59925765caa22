/*
 * CoDel (Nichols & Jacobson; RFC 8289), the SEDA_DISCIPLINE_CODEL queue
 * discipline, applied to each dequeued batch.
 */
#include <pthread.h>

#include "runtime_internal.h"

static uint64_t isqrt(uint64_t x)
{
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > x)
        bit >>= 2;
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

/* CoDel's control law: the next drop comes interval/sqrt(count) later
 * (saturated: an interval near INT64_MAX means "not in this clock's life"). */
static int64_t codel_next(const seda_stage_t *s, int64_t t, uint32_t count)
{
    return seda__add_sat(t, (int64_t)((uint64_t)s->codel_interval / isqrt(count ? count : 1)));
}

/*
 * Once events have waited longer than `target` for a whole `interval`, drop
 * one, then drop more often (interval / sqrt(count)) until the sojourn time
 * falls below target. Latency stays bounded under overload while a burst that
 * drains within the interval loses nothing. Dropped events go to the drop
 * callback and are counted; control events are never dropped.
 */
size_t seda__codel_filter(seda_stage_t *s, void **events, uint32_t *stamps, size_t k, int64_t now)
{
    uint32_t now_stamp = seda__us_stamp(now);
    size_t kept = 0;
    uint64_t drops = 0;
    pthread_mutex_lock(&s->codel_lock);
    for (size_t i = 0; i < k; i++) {
        bool control = stamps[i] & SEDA__STAMP_CONTROL;
        int64_t sojourn = (int64_t)((now_stamp - stamps[i]) & SEDA__STAMP_TIME) * 1000;
        bool ok_to_drop = false;
        if (sojourn < s->codel_target) {
            s->codel_first_above = 0;
        } else if (s->codel_first_above == 0) {
            s->codel_first_above = seda__add_sat(now, s->codel_interval);
        } else if (now >= s->codel_first_above) {
            ok_to_drop = true;
        }
        bool drop = false;
        if (s->codel_dropping) {
            if (!ok_to_drop) {
                s->codel_dropping = false;
            } else if (now >= s->codel_drop_next) {
                s->codel_count++;
                s->codel_drop_next = codel_next(s, s->codel_drop_next, s->codel_count);
                drop = true;
            }
        } else if (ok_to_drop) {
            /* Resume near the last drop rate if we were dropping recently. */
            uint32_t delta = s->codel_count - s->codel_last_count;
            int64_t recently =
                s->codel_interval > INT64_MAX / 16 ? INT64_MAX : 16 * s->codel_interval;
            s->codel_count = delta > 1 && now - s->codel_drop_next < recently ? delta : 1;
            s->codel_last_count = s->codel_count;
            s->codel_drop_next = codel_next(s, now, s->codel_count);
            s->codel_dropping = true;
            drop = true;
        }
        if (drop && !control) {
            s->drop(s->ctx, events[i]);
            drops++;
        } else {
            events[kept] = events[i];
            stamps[kept] = stamps[i];
            kept++;
        }
    }
    pthread_mutex_unlock(&s->codel_lock);
    if (drops)
        /* Release: read by collect() like `processed`. */
        atomic_fetch_add_explicit(&s->dropped, drops, memory_order_release);
    return kept;
}
