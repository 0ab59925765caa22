/*
 * seda_queue: the bounded event queue that separates two stages.
 *
 * A lock-free multi-producer multi-consumer ring of `void *` events with a
 * power-of-two capacity and a sequence number per slot (after Dmitry Vyukov's
 * bounded MPMC queue), extended with all-or-nothing batch enqueue, batch
 * dequeue, and a close that is linearizable with enqueue.
 *
 * Ownership: the queue never looks inside an event and never frees one. An
 * event accepted by an enqueue belongs to the queue until a dequeue hands it
 * back; an event whose enqueue failed still belongs to the caller. Destroying
 * a queue that still holds events hands each to a callback (see
 * seda_queue_destroy), so nothing is lost silently.
 *
 * Per-event metadata. Each slot carries, beside the event pointer, a 32-bit
 * `stamp` chosen by the producer. The runtime stores the enqueue time in
 * microseconds in the low 31 bits (wrapping; see seda_stage_enqueue), so the
 * queueing delay of an event is `(now_us - stamp) & 0x7fffffff` (exact for
 * delays under 35 minutes) with one clock read per dequeued batch; bit 31
 * marks a control event. The stamp fits beside a
 * 32-bit sequence number, so a slot stays 16 bytes (four per cache line).
 * Metadata that describes the event itself (its class or priority, its size in
 * bytes) lives in the event, where the application already has it.
 *
 * Codes: -EAGAIN full (enqueue) or empty (dequeue); -EPIPE closed (enqueue) or
 * closed and drained (dequeue); -EINVAL a batch larger than the capacity or a
 * bad argument; -ETIMEDOUT a timed wait expired.
 *
 * "Full" is momentary too: a consumer preempted between claiming the oldest
 * event and releasing its slot makes an enqueue see -EAGAIN even below
 * capacity, until that consumer runs again.
 *
 * Progress: no operation takes a lock. As in every per-slot-sequence ring, a
 * producer preempted between claiming a slot and publishing it delays the
 * consumers of that one slot (they see the queue as empty there); other
 * producers are never delayed by it.
 */
#ifndef SEDA_QUEUE_H
#define SEDA_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "notifier.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_queue seda_queue_t;

/* Largest capacity a queue accepts (the 32-bit slot sequences need headroom). */
#define SEDA_QUEUE_MAX_CAPACITY (1u << 30)

/*
 * Creates a queue holding at most `capacity` events, rounded up to a power of
 * two of at least 2 (capacity 1 .. SEDA_QUEUE_MAX_CAPACITY); read the result
 * back with seda_queue_capacity. `notifier` is where consumers of this
 * queue park: pass one shared by every queue a thread serves, or NULL for a
 * private one. The queue does not own a shared notifier; it must outlive the
 * queue.
 * Returns 0 and stores the handle in *out; -EINVAL (capacity 0 or too large,
 * NULL out); -ENOMEM.
 */
int seda_queue_create(seda_queue_t **out, size_t capacity, seda_notifier_t *notifier);

/*
 * Destroys a queue. No other thread may be using it. Every event still in it
 * is passed to `drain(ctx, event)` in FIFO order, unless drain is NULL (the
 * caller promises the queue is empty or the events need no release). Returns
 * the number of events drained. NULL q returns 0.
 */
size_t seda_queue_destroy(seda_queue_t *q, void (*drain)(void *ctx, void *event), void *ctx);

/*
 * Enqueues one event with stamp 0. Returns 0; -EAGAIN when full; -EPIPE when
 * closed. On failure the event still belongs to the caller. Any thread.
 * Wakes one consumer parked on the queue's notifier if there is one.
 */
int seda_queue_enqueue(seda_queue_t *q, void *event);

/* seda_queue_enqueue with a stamp (see "Per-event metadata"). */
int seda_queue_enqueue_at(seda_queue_t *q, void *event, uint32_t stamp);

/*
 * seda_queue_enqueue_at, waiting while the queue is full, for at most
 * timeout_ns (< 0: no limit): the producer parks until a consumer frees a
 * slot (consumers check for parked producers with one load per dequeue).
 * Returns 0; -EPIPE when closed (also while waiting); -ETIMEDOUT. On failure
 * the event still belongs to the caller. Beware cycles: a producer that
 * waits on a queue that only its own thread can drain waits for ever.
 */
int seda_queue_enqueue_wait(seda_queue_t *q, void *event, uint32_t stamp, int64_t timeout_ns);

/*
 * Enqueues all `count` events, in order, or none of them: returns `count`
 * (0 for count 0); -EAGAIN when fewer than `count` slots are free; -EPIPE when
 * closed; -EINVAL when count exceeds the capacity. Every event gets `stamp`.
 * The events occupy consecutive positions: no other producer's event is
 * interleaved with them.
 */
int seda_queue_enqueue_many(seda_queue_t *q, void *const *events, size_t count);
int seda_queue_enqueue_many_at(seda_queue_t *q, void *const *events, size_t count, uint32_t stamp);

/*
 * Dequeues the oldest event into *event. Returns 0; -EAGAIN when empty (or
 * when the oldest event's producer has not finished publishing it); -EPIPE
 * when the queue is closed and every accepted event has been dequeued.
 * Any thread.
 */
int seda_queue_dequeue(seda_queue_t *q, void **event);

/*
 * Dequeues up to `max` of the oldest events, in FIFO order, into events[];
 * their stamps into stamps[] unless stamps is NULL. Returns how many (>= 1);
 * -EAGAIN when empty; -EPIPE when closed and drained; -EINVAL when max is 0.
 * Takes what is ready now and never waits for more.
 */
int seda_queue_dequeue_many(seda_queue_t *q, void **events, uint32_t *stamps, size_t max);

/*
 * seda_queue_dequeue_many, parking on the queue's notifier while the queue is
 * empty, for at most timeout_ns (< 0: no limit). Returns a count >= 1; -EPIPE
 * when closed and drained; -ETIMEDOUT; -EINVAL when max is 0.
 */
int seda_queue_dequeue_wait(seda_queue_t *q, void **events, uint32_t *stamps, size_t max,
                            int64_t timeout_ns);

/*
 * Closes the queue. Linearizable with enqueue: an enqueue ordered after the
 * close fails with -EPIPE, and every event accepted before it stays
 * dequeueable. Wakes every thread parked on the queue's notifier. Idempotent;
 * returns 0, or -EPIPE if the queue was already closed.
 */
int seda_queue_close(seda_queue_t *q);

/* 1 when the queue has been closed, else 0. */
int seda_queue_is_closed(const seda_queue_t *q);

/*
 * Events accepted and not yet claimed by a consumer: a snapshot between 0 and
 * the capacity. Reads the producer counter with a seq_cst load, so it may
 * serve as the "is there work?" check of the notifier's park protocol (an
 * event whose producer has claimed a slot counts, even before it is visible).
 */
size_t seda_queue_size(const seda_queue_t *q);

/* Events this queue has accepted since it was created (a counter that only
 * grows: enqueued = accepted; waiting = accepted - taken). */
uint64_t seda_queue_accepted(const seda_queue_t *q);

/* The capacity (a power of two). */
size_t seda_queue_capacity(const seda_queue_t *q);

/* The notifier consumers of this queue park on (never NULL). */
seda_notifier_t *seda_queue_notifier(const seda_queue_t *q);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_QUEUE_H */
