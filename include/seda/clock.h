/*
 * seda_clock: the time source of everything in Seda that depends on time
 * (timers, statistics, controllers), replaceable so that tests can drive time
 * by hand and be deterministic.
 *
 * Two kinds:
 *  - the monotonic clock (seda_clock_monotonic, or NULL wherever a clock is
 *    taken): CLOCK_MONOTONIC in nanoseconds. Static; never freed.
 *  - a manual clock (seda_clock_manual_create): time moves only when a test
 *    sets or advances it. Its time is one atomic word, so any thread may read
 *    or move it at any time.
 *
 * Times are signed 64-bit nanoseconds on the clock's own axis (not the wall
 * clock), never negative, and never go backwards: a manual clock refuses to be
 * set to an earlier time.
 */
#ifndef SEDA_CLOCK_H
#define SEDA_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_clock seda_clock_t;

/*
 * The clock's current time in nanoseconds. NULL means the monotonic clock.
 * Any thread. A manual clock's time is read with acquire ordering: what a
 * thread wrote before it moved the clock (seda_clock_manual_set/advance) is
 * visible to a thread that reads the new time.
 */
int64_t seda_clock_now(const seda_clock_t *c);

/* The monotonic clock (CLOCK_MONOTONIC). Static storage; never free it. */
const seda_clock_t *seda_clock_monotonic(void);

/*
 * Creates a manual clock reading start_ns (>= 0). Returns 0 and stores the
 * handle in *out; -EINVAL (NULL out, negative start); -ENOMEM. Free it with
 * seda_clock_destroy once nothing uses it (timers keep a pointer to their
 * clock and do not own it).
 */
int seda_clock_manual_create(seda_clock_t **out, int64_t start_ns);

/*
 * Sets a manual clock to now_ns. Returns 0 (also when now_ns is the current
 * time); -EINVAL when now_ns is earlier than the clock's time (time never goes
 * backwards; the clock is left unchanged) or c is not a manual clock. Any
 * thread; concurrent sets never move the clock backwards (a compare-and-swap
 * loop, release ordering).
 */
int seda_clock_manual_set(seda_clock_t *c, int64_t now_ns);

/*
 * Moves a manual clock forward by delta_ns (>= 0). Returns 0; -EINVAL for a
 * negative delta, a sum beyond INT64_MAX (the clock is left unchanged) or a
 * clock that is not manual. Any thread; concurrent advances add up.
 */
int seda_clock_manual_advance(seda_clock_t *c, int64_t delta_ns);

/*
 * Destroys a manual clock. No thread may be using it, nor any timer facility
 * created on it. The monotonic clock and NULL are ignored.
 */
void seda_clock_destroy(seda_clock_t *c);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_CLOCK_H */
