/*
 * seda_notifier: where threads park when every queue they serve is empty.
 *
 * One notifier is shared by any number of queues and any number of waiting
 * threads: an executor thread serving many stages, or an epoll thread, parks
 * once for all of them. A producer that finds no thread parked makes no
 * system call: the fast path of a wake is one load.
 *
 * The park protocol (a store-load race, closed with sequentially consistent
 * read-modify-writes on both sides):
 *
 *     uint32_t epoch = seda_notifier_prepare(n);  // RMW: announce the waiter
 *     if (work_available())                      // seq_cst loads (e.g.
 *         seda_notifier_cancel(n);               //  seda_queue_size)
 *     else
 *         seda_notifier_park(n, epoch, timeout); // sleeps unless woken since
 *                                                 //  prepare
 *
 * A producer publishes with a seq_cst RMW (the queue's tail CAS) and then
 * reads the waiter count; by the single total order of seq_cst operations
 * either the producer sees the waiter and wakes it, or the waiter's check
 * sees the producer's event. Neither can miss the other.
 *
 * Waiters must be interchangeable: seda_notifier_wake(n, 1) wakes any one of
 * them, so every thread parked on a notifier must serve every queue that
 * uses it (an executor's identical threads do). Threads serving different
 * queues need different notifiers, or wakes of INT32_MAX.
 *
 * Two kinds: a futex word (the default) and an eventfd (SEDA_NOTIFIER_EVENTFD),
 * whose descriptor an epoll loop can watch alongside its sockets. The
 * eventfd is readable only while a wake-up is pending for a waiter that has
 * not taken it: a wake claims up to `count` waiters and posts one unit each,
 * and every waiter leaves (park or cancel) either by taking a unit or, if no
 * wake claimed it, by withdrawing from the count. Once the traffic stops and
 * every waiter is parked, the descriptor holds nothing and nobody wakes.
 *
 * An event loop that sleeps in its own poller: prepare, check for work, then
 * wait in the poller with seda_notifier_fd among its descriptors; after the
 * poller returns, seda_notifier_park(n, epoch, 0) leaves (taking the pending
 * unit if there is one, and reporting 0 when woken) while
 * seda_notifier_cancel leaves without looking at the descriptor (taking a
 * unit only when a wake claimed this thread).
 */
#ifndef SEDA_NOTIFIER_H
#define SEDA_NOTIFIER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_notifier seda_notifier_t;

enum seda_notifier_flags {
    /* Back the notifier with an eventfd; seda_notifier_fd returns it. */
    SEDA_NOTIFIER_EVENTFD = 1u << 0,
};

/*
 * Creates a notifier. flags: 0 or SEDA_NOTIFIER_EVENTFD.
 * Returns 0 and stores the handle in *out; -EINVAL for unknown flags or a NULL
 * out; -ENOMEM; or the eventfd's error. Free it with seda_notifier_destroy.
 */
int seda_notifier_create(seda_notifier_t **out, unsigned flags);

/*
 * Destroys a notifier. No thread may be parked on it and no queue may still
 * use it (destroy the queues first). NULL is ignored.
 */
void seda_notifier_destroy(seda_notifier_t *n);

/*
 * Announces that the calling thread is about to park and returns the epoch to
 * pass to seda_notifier_park. A seq_cst RMW: every producer whose publication
 * comes later in the total order will wake this thread. Must be followed by
 * exactly one seda_notifier_park or seda_notifier_cancel on the same thread.
 */
uint32_t seda_notifier_prepare(seda_notifier_t *n);

/* Withdraws a prepare without sleeping (work was found). For the eventfd
 * kind, if a wake claimed this thread meanwhile, takes the unit it posted
 * (a read; it may wait the few instructions between that wake's claim and
 * its write), so that no unit is left behind. */
void seda_notifier_cancel(seda_notifier_t *n);

/*
 * Sleeps until a wake that happened after the matching prepare, or until
 * timeout_ns elapses (timeout_ns < 0: no limit; 0: do not sleep). Withdraws the
 * waiter before returning. Returns 0 when woken (or when a wake had already
 * happened), -ETIMEDOUT, -EINTR, or another negative errno from futex/ppoll. A return of 0 promises only that the
 * caller should look for work again: wakes may be spurious.
 */
int seda_notifier_park(seda_notifier_t *n, uint32_t epoch, int64_t timeout_ns);

/*
 * Wakes up to `count` parked threads (count < 1 wakes one; INT32_MAX all).
 * Costs one seq_cst load when none is parked; otherwise one futex_wake or,
 * for the eventfd kind, a CAS claiming the waiters and one eventfd write (no
 * write when every waiter withdrew meanwhile). Any thread may call it at any
 * time.
 */
void seda_notifier_wake(seda_notifier_t *n, int32_t count);

/* The eventfd of a SEDA_NOTIFIER_EVENTFD notifier, or -EBADF for a futex one. */
int seda_notifier_fd(const seda_notifier_t *n);

/* Threads between prepare and park/cancel right now (a racy snapshot); for
 * the eventfd kind, those a wake has not claimed yet. */
uint32_t seda_notifier_waiters(const seda_notifier_t *n);

/* How many wake system calls (futex wakes, eventfd writes) this notifier has
 * made since it was created. */
uint64_t seda_notifier_wake_syscalls(const seda_notifier_t *n);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_NOTIFIER_H */
