/*
 * The bounded MPMC event queue.
 *
 * Design (after Vyukov's bounded MPMC queue). Producers claim positions by
 * CAS on `tail`, consumers by CAS on `head`; both are 64-bit counters that
 * never wrap in practice. Slot i holds a 32-bit sequence number telling whose
 * turn it is:
 *
 *     seq == pos        free for the producer of position pos
 *     seq == pos + 1    holds the event of position pos, ready for its consumer
 *
 * and the consumer of pos frees the slot for pos + capacity. Producers never
 * read `head` and consumers read `tail` only when the queue looks empty, so
 * the two counters live on their own cache lines and the only memory the two
 * sides share in steady state is the slots themselves.
 *
 * Sequence numbers are the low 32 bits of positions and are compared by
 * signed 32-bit difference. A slot's sequence is always within one capacity
 * of the position that reads it (capacity <= 2^30), and every decision that
 * matters is confirmed by a 64-bit CAS, so the truncation is exact.
 *
 * Close sets bit 63 of `tail` with an RMW. Producers claim with a CAS on the
 * whole word, so a claim either precedes the close in the modification order
 * of `tail` (the event was accepted and will be published) or fails and sees
 * the bit: no event is accepted after the close and then lost.
 *
 * Batches. enqueue_many checks that all `count` slots are free for this lap
 * before one CAS claims them all, so it is all-or-nothing without a rollback.
 * dequeue_many scans forward from `head` over ready slots and claims the run
 * with one CAS. A batch of 32 costs one CAS per side instead of 32.
 */
#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal.h"
#include "seda/queue.h"

#define CLOSED_BIT (UINT64_C(1) << 63)

struct slot {
    _Atomic uint32_t seq;
    uint32_t stamp; /* plain: written before, read after, the seq handoff */
    void *event;    /* likewise */
};
_Static_assert(sizeof(struct slot) == 16, "four slots per cache line");

struct seda_queue {
    /* Read-only after create, but for `closed`, written once. */
    struct slot *slots;
    uint64_t mask;
    seda_notifier_t *notifier;
    bool owns_notifier;
    /* Where producers waiting for room park (seda_queue_enqueue_wait).
     * Embedded in this read-mostly line: every dequeue checks its waiter
     * count with one load, with no pointer to follow. */
    seda_notifier_t space;
    /* Set after CLOSED_BIT, so that a consumer finding the queue empty can
     * ask "closed?" without reading `tail`: a read of the producers' line on
     * every empty poll would steal it from them. */
    _Atomic bool closed;

    /* Producers' claim counter | CLOSED_BIT. */
    alignas(SEDA__CACHELINE) _Atomic uint64_t tail;
    /* Consumers' claim counter. */
    alignas(SEDA__CACHELINE) _Atomic uint64_t head;
};

static inline int32_t seq_diff(uint32_t seq, uint64_t pos)
{
    return (int32_t)(seq - (uint32_t)pos);
}

int seda_queue_create(seda_queue_t **out, size_t capacity, seda_notifier_t *notifier)
{
    if (!out || capacity == 0 || capacity > SEDA_QUEUE_MAX_CAPACITY)
        return -EINVAL;
    /* At least 2: with one slot, "holds the event of pos" (seq pos + 1) would
     * read as "free for pos + 1". */
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    seda_queue_t *q = seda__alloc_aligned(sizeof *q);
    if (!q)
        return -ENOMEM;
    q->slots = seda__alloc_aligned(cap * sizeof(struct slot));
    if (!q->slots) {
        free(q);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cap; i++)
        atomic_init(&q->slots[i].seq, (uint32_t)i);
    q->mask = cap - 1;
    seda__notifier_init(&q->space);
    if (notifier) {
        q->notifier = notifier;
    } else {
        int r = seda_notifier_create(&q->notifier, 0);
        if (r < 0) {
            free(q->slots);
            free(q);
            return r;
        }
        q->owns_notifier = true;
    }
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    *out = q;
    return 0;
}

size_t seda_queue_destroy(seda_queue_t *q, void (*drain)(void *ctx, void *event), void *ctx)
{
    if (!q)
        return 0;
    size_t drained = 0;
    void *ev;
    /* No other thread may use q now, so every claimed slot is published. */
    while (seda_queue_dequeue(q, &ev) == 0) {
        if (drain)
            drain(ctx, ev);
        drained++;
    }
    if (q->owns_notifier)
        seda_notifier_destroy(q->notifier);
    free(q->slots);
    free(q);
    return drained;
}

/* Claims `count` consecutive free positions; returns the first or a code. */
static inline int64_t claim_for_enqueue(seda_queue_t *q, size_t count)
{
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        if (SEDA__UNLIKELY(pos & CLOSED_BIT))
            return -EPIPE;
        int32_t dif = 0;
        size_t i;
        for (i = 0; i < count; i++) {
            /* Acquire pairs with the consumer's release in publish_free: we
             * must not overwrite the slot before that consumer has read it. */
            uint32_t seq =
                atomic_load_explicit(&q->slots[(pos + i) & q->mask].seq, memory_order_acquire);
            dif = seq_diff(seq, pos + i);
            if (dif != 0)
                break;
        }
        if (SEDA__LIKELY(i == count)) {
            /* seq_cst: this RMW is the publication half of the notifier's
             * park protocol (see notifier.h); on failure pos is reloaded. */
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + count,
                                                      memory_order_seq_cst, memory_order_relaxed))
                return (int64_t)pos;
        } else if (dif < 0) {
            /* Slot pos+i still holds the event of the previous lap: full,
             * unless the tail moved meanwhile (another claim, or a close). */
            uint64_t now = atomic_load_explicit(&q->tail, memory_order_relaxed);
            if (now == pos)
                return -EAGAIN;
            pos = now;
        } else {
            /* Another producer claimed pos already. */
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
}

static inline void fill_slot(seda_queue_t *q, uint64_t pos, void *event, uint32_t stamp)
{
    struct slot *s = &q->slots[pos & q->mask];
    s->event = event;
    s->stamp = stamp;
}

static inline void publish_slot(seda_queue_t *q, uint64_t pos)
{
    /* Release pairs with the consumer's acquire load in claim_for_dequeue:
     * the event and stamp are visible before the slot reads as ready. */
    atomic_store_explicit(&q->slots[pos & q->mask].seq, (uint32_t)pos + 1, memory_order_release);
}

int seda_queue_enqueue_at(seda_queue_t *q, void *event, uint32_t stamp)
{
    int64_t pos = claim_for_enqueue(q, 1);
    if (SEDA__UNLIKELY(pos < 0))
        return (int)pos;
    fill_slot(q, (uint64_t)pos, event, stamp);
    publish_slot(q, (uint64_t)pos);
    seda_notifier_wake(q->notifier, 1);
    return 0;
}

int seda_queue_enqueue(seda_queue_t *q, void *event)
{
    return seda_queue_enqueue_at(q, event, 0);
}

int seda_queue_enqueue_many_at(seda_queue_t *q, void *const *events, size_t count, uint32_t stamp)
{
    if (count == 0)
        return 0;
    if (!events || count > q->mask + 1)
        return -EINVAL;
    int64_t pos = claim_for_enqueue(q, count);
    if (SEDA__UNLIKELY(pos < 0))
        return (int)pos;
    for (size_t i = 0; i < count; i++)
        fill_slot(q, (uint64_t)pos + i, events[i], stamp);
    /* Last to first: consumers scan forward from the oldest slot, so the
     * batch becomes visible whole, and a consumer does not take it in
     * pieces while it is being written. */
    for (size_t i = count; i-- > 0;)
        publish_slot(q, (uint64_t)pos + i);
    seda_notifier_wake(q->notifier, count > INT32_MAX ? INT32_MAX : (int32_t)count);
    return (int)count;
}

int seda_queue_enqueue_many(seda_queue_t *q, void *const *events, size_t count)
{
    return seda_queue_enqueue_many_at(q, events, count, 0);
}

/* Is the queue closed with every accepted event claimed by a consumer? */
static bool closed_and_drained(const seda_queue_t *q, uint64_t head)
{
    seda_queue_t *mq = (seda_queue_t *)q;
    /* Relaxed: a consumer that misses a close that has just happened reports
     * "empty" once more and sees it on a later poll; the verdict itself comes
     * from `tail`. */
    if (SEDA__LIKELY(!atomic_load_explicit(&mq->closed, memory_order_relaxed)))
        return false;
    uint64_t t = atomic_load_explicit(&mq->tail, memory_order_seq_cst);
    return (t & CLOSED_BIT) && (t & ~CLOSED_BIT) == head;
}

/* Claims up to `max` ready positions; returns how many, the first in *first. */
static inline int claim_for_dequeue(seda_queue_t *q, size_t max, uint64_t *first)
{
    uint64_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (;;) {
        int32_t dif = 0;
        size_t k;
        for (k = 0; k < max; k++) {
            /* Acquire pairs with the producer's release in publish_slot. */
            uint32_t seq =
                atomic_load_explicit(&q->slots[(pos + k) & q->mask].seq, memory_order_acquire);
            dif = seq_diff(seq, pos + k + 1);
            if (dif != 0)
                break;
        }
        if (SEDA__LIKELY(k > 0)) {
            /* The slots' contents were ordered by the acquire loads above,
             * and no producer can reuse a slot we claim until we free it;
             * seq_cst only for the "room" half of the park protocol (a
             * producer waiting for room, see seda_queue_enqueue_wait). On
             * failure pos is reloaded. */
            if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + k, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *first = pos;
                return (int)k;
            }
        } else if (dif < 0) {
            /* Slot pos not published yet: empty, unless head moved meanwhile. */
            uint64_t now = atomic_load_explicit(&q->head, memory_order_relaxed);
            if (now == pos)
                return closed_and_drained(q, pos) ? -EPIPE : -EAGAIN;
            pos = now;
        } else {
            pos = atomic_load_explicit(&q->head, memory_order_relaxed);
        }
    }
}

static inline void free_slot(seda_queue_t *q, uint64_t pos)
{
    /* Release pairs with the producer's acquire in claim_for_enqueue: our
     * reads of the slot happen before its next lap's writes. */
    atomic_store_explicit(&q->slots[pos & q->mask].seq, (uint32_t)(pos + q->mask + 1),
                          memory_order_release);
}

int seda_queue_dequeue(seda_queue_t *q, void **event)
{
    uint64_t pos;
    int k = claim_for_dequeue(q, 1, &pos);
    if (SEDA__UNLIKELY(k < 0))
        return k;
    *event = q->slots[pos & q->mask].event;
    free_slot(q, pos);
    seda_notifier_wake(&q->space, 1);
    return 0;
}

int seda_queue_dequeue_many(seda_queue_t *q, void **events, uint32_t *stamps, size_t max)
{
    if (max == 0 || !events)
        return -EINVAL;
    if (max > INT32_MAX)
        max = INT32_MAX;
    uint64_t pos;
    int k = claim_for_dequeue(q, max, &pos);
    if (SEDA__UNLIKELY(k < 0))
        return k;
    for (int i = 0; i < k; i++) {
        struct slot *s = &q->slots[(pos + (uint64_t)i) & q->mask];
        events[i] = s->event;
        if (stamps)
            stamps[i] = s->stamp;
    }
    /* Last to first, for the same reason as publication: a producer checking
     * for room finds the run free whole or not at all. */
    for (int i = k; i-- > 0;)
        free_slot(q, pos + (uint64_t)i);
    seda_notifier_wake(&q->space, k);
    return k;
}

/* Nanoseconds until `deadline` (-1: none), 0 once it has passed. */
static int64_t time_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - seda__now_ns();
    return left > 0 ? left : 0;
}

/* The deadline `timeout_ns` from now (-1: none), saturated: INT64_MAX
 * leaves time_left positive for ever. */
static int64_t deadline_after(int64_t timeout_ns)
{
    return timeout_ns < 0 ? -1 : seda__add_sat(seda__now_ns(), timeout_ns);
}

int seda_queue_dequeue_wait(seda_queue_t *q, void **events, uint32_t *stamps, size_t max,
                            int64_t timeout_ns)
{
    int64_t deadline = deadline_after(timeout_ns);
    for (unsigned round = 0;; round++) {
        int r = seda_queue_dequeue_many(q, events, stamps, max);
        if (r != -EAGAIN)
            return r;
        if (round < 64) {
            /* A producer may be between its claim and its publication. */
            seda__cpu_relax();
            continue;
        }
        int64_t left = time_left(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        uint32_t epoch = seda_notifier_prepare(q->notifier);
        /* seda_queue_size reads tail seq_cst: after our RMW in prepare. A
         * claimed but unpublished event, or a close, means: do not sleep. */
        if (seda_queue_size(q) != 0 || seda_queue_is_closed(q)) {
            seda_notifier_cancel(q->notifier);
            sched_yield();
            continue;
        }
        r = seda_notifier_park(q->notifier, epoch, left);
        if (r < 0 && r != -ETIMEDOUT && r != -EINTR)
            return r;
    }
}

int seda_queue_enqueue_wait(seda_queue_t *q, void *event, uint32_t stamp, int64_t timeout_ns)
{
    int64_t deadline = deadline_after(timeout_ns);
    for (unsigned round = 0;; round++) {
        int r = seda_queue_enqueue_at(q, event, stamp);
        if (r != -EAGAIN)
            return r;
        if (round < 64) {
            seda__cpu_relax(); /* a consumer may be freeing a slot right now */
            continue;
        }
        int64_t left = time_left(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        uint32_t epoch = seda_notifier_prepare(&q->space);
        /* seda_queue_size reads head seq_cst after our RMW in prepare; a
         * consumer's head CAS (seq_cst) followed by its wake's load of the
         * waiter count is the other half. Room claimed but not yet freed, or
         * a close: do not sleep. */
        if (seda_queue_size(q) < seda_queue_capacity(q) || seda_queue_is_closed(q)) {
            seda_notifier_cancel(&q->space);
            sched_yield();
            continue;
        }
        r = seda_notifier_park(&q->space, epoch, left);
        if (r < 0 && r != -ETIMEDOUT && r != -EINTR)
            return r;
    }
}

int seda_queue_close(seda_queue_t *q)
{
    /* seq_cst RMW: the publication half of the park protocol, as for enqueue. */
    uint64_t old = atomic_fetch_or_explicit(&q->tail, CLOSED_BIT, memory_order_seq_cst);
    atomic_store_explicit(&q->closed, true, memory_order_seq_cst);
    seda_notifier_wake(q->notifier, INT32_MAX);
    seda_notifier_wake(&q->space, INT32_MAX); /* waiting producers see -EPIPE */
    return (old & CLOSED_BIT) ? -EPIPE : 0;
}

int seda_queue_is_closed(const seda_queue_t *q)
{
    return (atomic_load_explicit(&((seda_queue_t *)q)->tail, memory_order_seq_cst) & CLOSED_BIT) !=
           0;
}

size_t seda_queue_size(const seda_queue_t *q)
{
    seda_queue_t *mq = (seda_queue_t *)q;
    /* Head first: both only grow, so tail read later is >= this head, and a
     * consumer racing ahead can only make the result smaller, never wrap. */
    uint64_t h = atomic_load_explicit(&mq->head, memory_order_seq_cst);
    uint64_t t = atomic_load_explicit(&mq->tail, memory_order_seq_cst) & ~CLOSED_BIT;
    uint64_t n = t - h;
    return n > mq->mask + 1 ? mq->mask + 1 : (size_t)n;
}

uint64_t seda_queue_accepted(const seda_queue_t *q)
{
    /* seq_cst: the runtime's quiescence check compares this with counters
     * that handlers bump after their own enqueues. */
    return atomic_load_explicit(&((seda_queue_t *)q)->tail, memory_order_seq_cst) & ~CLOSED_BIT;
}

size_t seda_queue_capacity(const seda_queue_t *q)
{
    return (size_t)q->mask + 1;
}

seda_notifier_t *seda_queue_notifier(const seda_queue_t *q)
{
    return q->notifier;
}
