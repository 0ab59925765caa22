/*
 * The notifier: a futex word (or an eventfd) plus a count of parked threads.
 * See include/seda/notifier.h for the park protocol and why it cannot lose a
 * wake-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "seda/notifier.h"

/* struct seda_notifier is in internal.h, so that a queue can embed one. */

void seda__notifier_init(seda_notifier_t *n)
{
    atomic_init(&n->epoch, 0);
    atomic_init(&n->waiters, 0);
    atomic_init(&n->wake_syscalls, 0);
    n->efd = -1;
}

int seda_notifier_create(seda_notifier_t **out, unsigned flags)
{
    if (!out || (flags & ~(unsigned)SEDA_NOTIFIER_EVENTFD))
        return -EINVAL;
    seda_notifier_t *n = seda__alloc_aligned(sizeof *n);
    if (!n)
        return -ENOMEM;
    seda__notifier_init(n);
    if (flags & SEDA_NOTIFIER_EVENTFD) {
        /* Semaphore mode: each wake posts one unit per thread it means to
         * wake and each parked thread takes one, so a wake-all cannot be
         * swallowed by the first reader. */
        n->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
        if (n->efd < 0) {
            int err = errno;
            free(n);
            return -err;
        }
    }
    *out = n;
    return 0;
}

void seda_notifier_destroy(seda_notifier_t *n)
{
    if (!n)
        return;
    if (n->efd >= 0)
        close(n->efd);
    free(n);
}

uint32_t seda_notifier_prepare(seda_notifier_t *n)
{
    /* seq_cst RMW: pairs with the producer's seq_cst publication RMW followed
     * by its seq_cst load of `waiters` in seda_notifier_wake. */
    atomic_fetch_add_explicit(&n->waiters, 1, memory_order_seq_cst);
    /* Read after announcing: a wake whose epoch bump we miss here saw us. */
    return atomic_load_explicit(&n->epoch, memory_order_seq_cst);
}

void seda_notifier_cancel(seda_notifier_t *n)
{
    atomic_fetch_sub_explicit(&n->waiters, 1, memory_order_seq_cst);
}

static int park_futex(seda_notifier_t *n, uint32_t epoch, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    /* The kernel compares the word with `epoch` under its own lock: a wake
     * that bumped the epoch after our prepare makes this return EAGAIN. */
    long r = syscall(SYS_futex, &n->epoch, FUTEX_WAIT_PRIVATE, epoch, tsp, NULL, 0);
    if (r == 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

static void drain_eventfd(seda_notifier_t *n)
{
    uint64_t v;
    /* Takes one unit (semaphore mode); non-blocking, so a unit another
     * waiter took already costs nothing. */
    (void)!read(n->efd, &v, sizeof v);
}

static int park_eventfd(seda_notifier_t *n, int64_t timeout_ns)
{
    struct pollfd p = { .fd = n->efd, .events = POLLIN };
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int r = ppoll(&p, 1, tsp, NULL);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -ETIMEDOUT;
    drain_eventfd(n);
    return 0;
}

int seda_notifier_park(seda_notifier_t *n, uint32_t epoch, int64_t timeout_ns)
{
    int r;
    if (atomic_load_explicit(&n->epoch, memory_order_seq_cst) != epoch) {
        r = 0; /* woken between prepare and here */
        if (n->efd >= 0)
            drain_eventfd(n);
    } else if (n->efd >= 0) {
        r = park_eventfd(n, timeout_ns);
    } else if (timeout_ns == 0) {
        r = -ETIMEDOUT;
    } else {
        r = park_futex(n, epoch, timeout_ns);
    }
    seda_notifier_cancel(n);
    return r;
}

void seda__notifier_wake_slow(seda_notifier_t *n, int32_t count)
{
    /* Bump before the syscall: a thread that has prepared but not yet entered
     * futex_wait sees the new epoch there and does not sleep. */
    atomic_fetch_add_explicit(&n->epoch, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&n->wake_syscalls, 1, memory_order_relaxed);
    if (n->efd >= 0) {
        uint64_t waiters = atomic_load_explicit(&n->waiters, memory_order_relaxed);
        uint64_t units = count < 1 ? 1 : (uint64_t)count;
        if (units > waiters)
            units = waiters ? waiters : 1;
        (void)!write(n->efd, &units, sizeof units);
    } else {
        syscall(SYS_futex, &n->epoch, FUTEX_WAKE_PRIVATE, count < 1 ? 1 : count, NULL, NULL, 0);
    }
}

void seda_notifier_wake(seda_notifier_t *n, int32_t count)
{
    /* seq_cst load: ordered after the caller's seq_cst publication RMW, pairs
     * with the RMW in seda_notifier_prepare. The whole fast path. */
    if (SEDA__LIKELY(atomic_load_explicit(&n->waiters, memory_order_seq_cst) == 0))
        return;
    seda__notifier_wake_slow(n, count);
}

int seda_notifier_fd(const seda_notifier_t *n)
{
    return n->efd >= 0 ? n->efd : -EBADF;
}

uint32_t seda_notifier_waiters(const seda_notifier_t *n)
{
    return atomic_load_explicit(&((seda_notifier_t *)n)->waiters, memory_order_relaxed);
}

uint64_t seda_notifier_wake_syscalls(const seda_notifier_t *n)
{
    return atomic_load_explicit(&((seda_notifier_t *)n)->wake_syscalls, memory_order_relaxed);
}
