/*
 * seda_timers: events registered to be delivered at a later time ("stages
 * register events to fire at some later time; implemented as a stage with its
 * own thread").
 *
 * A timer facility holds any number of pending timers, each an opaque event
 * and a target to deliver it to through a deliver function: into a
 * seda_queue_t (seda_timer_deliver_to_queue), into a stage, or anything else.
 * It is driven either by seda_timers_poll, called by whoever owns it (tests
 * with a manual clock call it after moving the clock: deterministic), or by
 * its own thread (seda_timers_start).
 *
 * Time. Deadlines are times of the facility's clock (seda_clock_now), in
 * nanoseconds. Time is cut into ticks of `resolution` ns (default 1 ms),
 * counted from the facility's creation: a timer is due at the first tick
 * boundary at or after its deadline, so it is delivered at most one resolution
 * late (plus scheduling delay) and never before its deadline. A deadline past
 * the last tick boundary the clock can reach (within one resolution of
 * INT64_MAX) falls due when the clock reads INT64_MAX, its end.
 *
 * Order. Due timers are delivered in deadline order; timers with equal
 * deadlines in the order they were added. A timer deferred because its target
 * was full stays ahead of every later timer for the same target.
 *
 * Delivery outcomes (the deliver function's return):
 *   >= 0     delivered; the target owns the event now.
 *   -EAGAIN  the target is full: the timer stays pending, is retried at the
 *            next poll (the timer thread polls again one resolution later) and
 *            counts one retry; later due timers for the same target wait
 *            behind it rather than overtake it. Control events (a periodic
 *            cleanup) are never dropped for lack of room.
 *   other    the target is closed (-EPIPE) or refuses the event: the timer is
 *            finished and the event goes to the facility's `undeliverable`
 *            callback with the code, and counts as undeliverable.
 * No event is ever dropped silently: each ends up delivered, handed back by a
 * cancel, passed to `undeliverable`, or handed back (or reported) by destroy.
 *
 * Ids. Every add returns a 64-bit id; 0 is never an id, and an id is never
 * reused by the same facility, so cancelling a stale id is always safe.
 *
 * Cost. A hierarchical timing wheel (levels of 64 slots, one occupancy bitmap
 * per level) over a pool of timer entries: add, cancel and fire are O(1)
 * (amortized over the at most 11 moves of a timer between levels); finding the
 * next deadline is a count-trailing-zeros per level. Memory: 64 bytes per
 * timer, pooled and reused (the pool keeps its high-water mark).
 *
 * Threads. Every function may be called from any thread, concurrently with
 * firing, except destroy (no other use at all) and where noted. Deliver,
 * undeliverable and hand-back callbacks run without the facility's internal
 * lock; they may call add and cancel (e.g. to re-arm a periodic timer), but
 * never poll or destroy.
 */
#ifndef SEDA_TIMER_H
#define SEDA_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_timers seda_timers_t;

/* A timer's id: nonzero, never reused within its facility. */
typedef uint64_t seda_timer_id_t;

/* Default tick length: 1 ms. */
#define SEDA_TIMERS_DEFAULT_RESOLUTION_NS 1000000

/*
 * Delivers `event` to `target`. Returns >= 0 delivered, -EAGAIN full (retry
 * later), -EPIPE closed, or another negative code (undeliverable). Called on
 * the polling thread without the facility's lock.
 */
typedef int (*seda_timer_deliver_fn)(void *target, void *event);

/* Receives a timer that could not be delivered (code < 0, not -EAGAIN). */
typedef void (*seda_timer_undeliverable_fn)(void *ctx, void *target, void *event, int code);

/* Receives a pending timer's event back (cancel all, destroy). */
typedef void (*seda_timer_hand_back_fn)(void *ctx, void *target, void *event);

/* seda_queue_enqueue(queue, event): the deliver function for a seda_queue_t. */
int seda_timer_deliver_to_queue(void *queue, void *event);

/*
 * Creates a timer facility on `clock` (NULL: the monotonic clock; it must
 * outlive the facility) with ticks of resolution_ns (0: the default).
 * `undeliverable` (required) receives every timer whose delivery failed with
 * a code other than -EAGAIN, with `ctx`, on the polling thread.
 * Returns 0 and stores the handle in *out; -EINVAL (NULL out or undeliverable,
 * negative resolution); -ENOMEM; or a pthread error. No thread is started.
 */
int seda_timers_create(seda_timers_t **out, const seda_clock_t *clock, int64_t resolution_ns,
                       seda_timer_undeliverable_fn undeliverable, void *ctx);

/*
 * Stops and joins the timer thread if one runs (waiting for a delivery in
 * progress), then passes every still-pending timer to hand_back(ctx, target,
 * event) in deadline order, and frees the facility. With hand_back NULL the
 * pending events are not released: they leak unless they need no release.
 * Either way returns how many timers were pending. No other thread may use
 * the facility, and no poll may be running. NULL t returns 0.
 */
size_t seda_timers_destroy(seda_timers_t *t, seda_timer_hand_back_fn hand_back, void *ctx);

/*
 * Starts the facility's own thread, which polls whenever a timer is due and
 * sleeps in between (until the next deadline, or until an add with an earlier
 * deadline wakes it). With a manual clock, which moves without telling
 * anyone, the thread polls every resolution (real time) while timers are
 * pending. thread_name: at most 15 characters are kept; NULL for
 * "seda-timers". Returns 0; -EALREADY if started before; -EINVAL (NULL t);
 * -ENOMEM (the thread could not be started). The thread stops in
 * seda_timers_destroy.
 */
int seda_timers_start(seda_timers_t *t, const char *thread_name);

/*
 * Registers `event` to be delivered to `target` by deliver(target, event) at
 * the clock time deadline_ns (a deadline already past is due at the next
 * poll). Stores the timer's id in *id unless id is NULL. Returns 0; -EINVAL
 * (NULL t or deliver); -ENOMEM. On failure the event still belongs to the
 * caller. The event belongs to the facility until it is delivered, cancelled
 * or handed back. Wakes the timer thread if this deadline comes first.
 */
int seda_timers_add_at(seda_timers_t *t, int64_t deadline_ns, seda_timer_deliver_fn deliver,
                       void *target, void *event, seda_timer_id_t *id);

/* seda_timers_add_at at seda_clock_now + delay_ns (>= 0, else -EINVAL;
 * a deadline beyond INT64_MAX is clamped to it). */
int seda_timers_add_after(seda_timers_t *t, int64_t delay_ns, seda_timer_deliver_fn deliver,
                          void *target, void *event, seda_timer_id_t *id);

/*
 * Cancels a pending timer and hands its event back in *event (unless event is
 * NULL). Returns 0; -ENOENT when the id is not pending: it fired, was
 * cancelled, was undeliverable, or never existed; -EBUSY when the timer's
 * deliver function is running at this instant: it will end delivered or
 * undeliverable (then -ENOENT) or, if the target was full, pending again (then
 * 0), so call again to learn which, but not from that timer's own deliver
 * function.
 * A timer waiting for retry after -EAGAIN is pending and can be cancelled.
 */
int seda_timers_cancel(seda_timers_t *t, seda_timer_id_t id, void **event);

/*
 * Cancels every pending timer, passing each to hand_back(ctx, target, event)
 * in deadline order, on the calling thread, without the lock. Timers whose
 * delivery is in progress at that moment are not pending and not included.
 * Returns how many; -EINVAL (NULL t or hand_back, and then hand_back is never
 * called).
 */
int64_t seda_timers_cancel_all(seda_timers_t *t, seda_timer_hand_back_fn hand_back, void *ctx);

/*
 * Delivers every timer due at the clock's current time, in order, on the
 * calling thread. Returns the nanoseconds until the facility next has work:
 * never later than the tick at which the next timer falls due (earlier when
 * the wheel must move timers between levels; one resolution when a full
 * target is to be retried; 0 when something is due already); -1 when no timer
 * is pending. Polls from several threads are serialized. Never call it from a
 * callback of this facility.
 */
int64_t seda_timers_poll(seda_timers_t *t);

/*
 * Counters, a consistent snapshot taken under the lock. A poll counts its
 * deliveries when it settles them, just after the deliver calls return, so a
 * consumer may see an event before `fired` counts it.
 */
typedef struct seda_timers_stats {
    uint64_t pending;       /* added, not yet delivered, cancelled or undeliverable */
    uint64_t added;         /* timers ever added */
    uint64_t fired;         /* delivered (deliver returned >= 0) */
    uint64_t retries;       /* deliveries put off to the next poll (target full) */
    uint64_t undeliverable; /* passed to the undeliverable callback */
    uint64_t cancelled;     /* handed back by cancel or cancel_all */
} seda_timers_stats_t;

/* Fills *out. Any thread. NULL t or out is ignored. */
void seda_timers_stats(const seda_timers_t *t, seda_timers_stats_t *out);

/* The facility's clock (never NULL: the monotonic clock when created with NULL). */
const seda_clock_t *seda_timers_clock(const seda_timers_t *t);

/* The tick length in nanoseconds. */
int64_t seda_timers_resolution(const seda_timers_t *t);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_TIMER_H */
