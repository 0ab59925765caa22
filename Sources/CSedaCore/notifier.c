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
#include <stdbool.h>
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

/*
 * The eventfd kind keeps its descriptor readable only while a wake-up is
 * pending for a thread that has not taken it yet. A wake claims waiters
 * (takes them off `waiters` with a CAS, at most `count`) and writes one unit
 * per claimed waiter (semaphore mode: a read takes one unit). Every thread
 * that prepared leaves in exactly one of two ways: it takes a unit (it, or
 * any waiter in its place, was claimed), or it takes itself off `waiters`
 * (it was not claimed). Hence units written = claims = units taken once
 * everyone has left: after the traffic, with every thread parked and nobody
 * claimed, the eventfd holds nothing. (Letting a thread that found work
 * cancel without taking a unit meant for it piled units up, and parked
 * threads then woke for nothing until the pile was gone.)
 *
 * Waiters are interchangeable, so a thread leaving may take a unit written
 * for another; the other stays parked and counted in `waiters` in its
 * place, and the thread that took the unit looks for work, which is all a
 * wake-up promises.
 */

/* Takes one unit if there is one; non-blocking. */
static bool take_unit(seda_notifier_t *n)
{
    uint64_t v;
    return read(n->efd, &v, sizeof v) == (ssize_t)sizeof v;
}

/* Leaves the set of waiters of an eventfd notifier. `readable`: ppoll saw a
 * unit, so try to take it first (the thread was woken). */
static void eventfd_leave(seda_notifier_t *n, bool readable)
{
    if (readable && take_unit(n))
        return;
    /* Not claimed: withdraw, as for the futex kind (no system call). */
    uint32_t w = atomic_load_explicit(&n->waiters, memory_order_relaxed);
    while (w > 0) {
        /* seq_cst: like the decrement of the futex kind's cancel. */
        if (atomic_compare_exchange_weak_explicit(&n->waiters, &w, w - 1, memory_order_seq_cst,
                                                  memory_order_relaxed))
            return;
    }
    /* Every waiter left in the count was claimed, this one's place too: the
     * claiming wake has written the unit or is about to (it writes right
     * after its CAS). Take it. */
    while (!take_unit(n)) {
        struct pollfd p = { .fd = n->efd, .events = POLLIN };
        (void)ppoll(&p, 1, NULL, NULL);
    }
}

void seda_notifier_cancel(seda_notifier_t *n)
{
    if (n->efd >= 0)
        eventfd_leave(n, false);
    else
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
    int err = r < 0 ? errno : 0;
    eventfd_leave(n, r > 0);
    if (r < 0)
        return -err;
    return r == 0 ? -ETIMEDOUT : 0;
}

int seda_notifier_park(seda_notifier_t *n, uint32_t epoch, int64_t timeout_ns)
{
    if (atomic_load_explicit(&n->epoch, memory_order_seq_cst) != epoch) {
        seda_notifier_cancel(n); /* woken between prepare and here */
        return 0;
    }
    if (n->efd >= 0)
        return park_eventfd(n, timeout_ns);
    int r = timeout_ns == 0 ? -ETIMEDOUT : park_futex(n, epoch, timeout_ns);
    atomic_fetch_sub_explicit(&n->waiters, 1, memory_order_seq_cst);
    return r;
}

/* The slow path of a wake: at least one thread is parked. */
static void wake_slow(seda_notifier_t *n, int32_t count)
{
    /* Bump before the syscall: a thread that has prepared but not yet entered
     * futex_wait (or ppoll) sees the new epoch there and does not sleep. */
    atomic_fetch_add_explicit(&n->epoch, 1, memory_order_seq_cst);
    uint32_t want = count < 1 ? 1 : (uint32_t)count;
    if (n->efd >= 0) {
        /* Claim up to `want` waiters, then post one unit each (see above). */
        uint32_t w = atomic_load_explicit(&n->waiters, memory_order_seq_cst);
        uint32_t k;
        do {
            if (w == 0)
                return; /* all withdrew, having found work themselves */
            k = w < want ? w : want;
        } while (!atomic_compare_exchange_weak_explicit(
            &n->waiters, &w, w - k, memory_order_seq_cst, memory_order_seq_cst));
        uint64_t units = k;
        atomic_fetch_add_explicit(&n->wake_syscalls, 1, memory_order_relaxed);
        (void)!write(n->efd, &units, sizeof units);
    } else {
        atomic_fetch_add_explicit(&n->wake_syscalls, 1, memory_order_relaxed);
        syscall(SYS_futex, &n->epoch, FUTEX_WAKE_PRIVATE, (int)want, NULL, NULL, 0);
    }
}

void seda_notifier_wake(seda_notifier_t *n, int32_t count)
{
    /* seq_cst load: ordered after the caller's seq_cst publication RMW, pairs
     * with the RMW in seda_notifier_prepare. The whole fast path. */
    if (SEDA__LIKELY(atomic_load_explicit(&n->waiters, memory_order_seq_cst) == 0))
        return;
    wake_slow(n, count);
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
