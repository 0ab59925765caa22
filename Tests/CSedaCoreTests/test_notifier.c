/*
 * The notifier: no system call when nobody is parked, a parked consumer is
 * woken by an enqueue, close wakes every parked thread, one notifier serves
 * several queues, and the eventfd kind is readable when it should be.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "test.h"

#define EV(i) ((void *)(uintptr_t)(0x100 + (i)))

static void wait_for_waiters(seda_notifier_t *n, uint32_t count)
{
    while (seda_notifier_waiters(n) < count)
        sched_yield();
    /* A waiter counted here may not be inside futex_wait yet; the epoch
     * makes that harmless, and this test checks the outcome, not timing. */
}

static void test_no_syscall_without_waiters(void)
{
    seda_queue_t *q;
    void *ev[64];
    CHECK_OK(seda_queue_create(&q, 64, NULL));
    seda_notifier_t *n = seda_queue_notifier(q);
    for (int i = 0; i < 100000; i++) {
        CHECK_OK(seda_queue_enqueue(q, EV(i)));
        CHECK_RC(seda_queue_enqueue_many(q, ev, 3), 3);
        CHECK_RC(seda_queue_dequeue_many(q, ev, NULL, 64), 4);
    }
    CHECK_EQ(seda_notifier_wake_syscalls(n), 0);
    seda_queue_destroy(q, NULL, NULL);
}

struct waiter {
    seda_queue_t *q;
    int result;
    void *event;
};

static void *wait_one(void *arg)
{
    struct waiter *w = arg;
    w->result = seda_queue_dequeue_wait(w->q, &w->event, NULL, 1, -1);
    return NULL;
}

static void test_enqueue_wakes_parked_consumer(void)
{
    seda_queue_t *q;
    CHECK_OK(seda_queue_create(&q, 8, NULL));
    seda_notifier_t *n = seda_queue_notifier(q);
    struct waiter w = { .q = q };
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, wait_one, &w));
    wait_for_waiters(n, 1);
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(pthread_join(t, NULL));
    CHECK_EQ(w.result, 1);
    CHECK(w.event == EV(1));
    CHECK_EQ(seda_notifier_wake_syscalls(n), 1);
    CHECK_EQ(seda_notifier_waiters(n), 0);
    seda_queue_destroy(q, NULL, NULL);
}

static void test_close_wakes_all(void)
{
    enum { N = 4 };
    seda_queue_t *q;
    CHECK_OK(seda_queue_create(&q, 8, NULL));
    struct waiter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){ .q = q };
        CHECK_OK(pthread_create(&t[i], NULL, wait_one, &w[i]));
    }
    wait_for_waiters(seda_queue_notifier(q), N);
    CHECK_OK(seda_queue_close(q));
    for (int i = 0; i < N; i++) {
        CHECK_OK(pthread_join(t[i], NULL));
        CHECK_RC(w[i].result, -EPIPE);
    }
    seda_queue_destroy(q, NULL, NULL);
}

/* One thread serving two queues through one notifier, as an executor does. */
struct server {
    seda_notifier_t *n;
    seda_queue_t *q[2];
    void *got;
    int from;
};

static void *serve_two(void *arg)
{
    struct server *s = arg;
    for (;;) {
        for (int i = 0; i < 2; i++) {
            if (seda_queue_dequeue(s->q[i], &s->got) == 0) {
                s->from = i;
                return NULL;
            }
        }
        uint32_t epoch = seda_notifier_prepare(s->n);
        if (seda_queue_size(s->q[0]) || seda_queue_size(s->q[1])) {
            seda_notifier_cancel(s->n);
            continue;
        }
        int r = seda_notifier_park(s->n, epoch, -1);
        CHECK(r == 0 || r == -EINTR);
    }
}

static void test_shared_notifier(unsigned flags)
{
    struct server s = { .from = -1 };
    CHECK_OK(seda_notifier_create(&s.n, flags));
    CHECK_OK(seda_queue_create(&s.q[0], 4, s.n));
    CHECK_OK(seda_queue_create(&s.q[1], 4, s.n));
    CHECK(seda_queue_notifier(s.q[1]) == s.n);
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, serve_two, &s));
    wait_for_waiters(s.n, 1);
    CHECK_OK(seda_queue_enqueue(s.q[1], EV(2)));
    CHECK_OK(pthread_join(t, NULL));
    CHECK_EQ(s.from, 1);
    CHECK(s.got == EV(2));
    CHECK(seda_notifier_wake_syscalls(s.n) >= 1);
    seda_queue_destroy(s.q[0], NULL, NULL);
    seda_queue_destroy(s.q[1], NULL, NULL);
    seda_notifier_destroy(s.n);
}

static void test_eventfd_readable(void)
{
    seda_notifier_t *n;
    CHECK_RC(seda_notifier_create(&n, 0x80), -EINVAL);
    CHECK_OK(seda_notifier_create(&n, 0));
    CHECK_RC(seda_notifier_fd(n), -EBADF);
    seda_notifier_destroy(n);
    CHECK_OK(seda_notifier_create(&n, SEDA_NOTIFIER_EVENTFD));
    int fd = seda_notifier_fd(n);
    CHECK(fd >= 0);
    seda_queue_t *q;
    CHECK_OK(seda_queue_create(&q, 4, n));
    struct pollfd p = { .fd = fd, .events = POLLIN };
    /* No waiter: an enqueue leaves the fd quiet (no syscall at all). */
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_EQ(poll(&p, 1, 0), 0);
    /* An epoll-style waiter: prepare, find nothing, watch the fd. */
    void *ev;
    CHECK_OK(seda_queue_dequeue(q, &ev));
    uint32_t epoch = seda_notifier_prepare(n);
    CHECK_EQ(seda_queue_size(q), 0);
    CHECK_OK(seda_queue_enqueue(q, EV(2)));
    CHECK_EQ(poll(&p, 1, 0), 1);
    /* park with timeout 0 consumes the signal and withdraws the waiter. */
    CHECK_OK(seda_notifier_park(n, epoch, 0));
    CHECK_EQ(poll(&p, 1, 0), 0);
    CHECK_EQ(seda_notifier_waiters(n), 0);
    /* Timed park with nothing coming. */
    epoch = seda_notifier_prepare(n);
    CHECK_RC(seda_notifier_park(n, epoch, 1000000), -ETIMEDOUT);
    CHECK_EQ(seda_queue_destroy(q, NULL, NULL), 1);
    seda_notifier_destroy(n);
}

/* Producers that prefer to wait: seda_queue_enqueue_wait parks while full. */
struct blocked_producer {
    seda_queue_t *q;
    int64_t timeout;
    int result;
};

static void *produce_waiting(void *arg)
{
    struct blocked_producer *p = arg;
    p->result = seda_queue_enqueue_wait(p->q, EV(42), 7, p->timeout);
    return NULL;
}

static void test_enqueue_waits_for_room(void)
{
    seda_queue_t *q;
    void *ev;
    uint32_t stamp;
    CHECK_OK(seda_queue_create(&q, 2, NULL));
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(seda_queue_enqueue(q, EV(2)));
    CHECK_RC(seda_queue_enqueue_wait(q, EV(3), 0, 2000000), -ETIMEDOUT);
    CHECK_RC(seda_queue_enqueue_wait(q, EV(3), 0, 0), -ETIMEDOUT);

    /* A parked producer gets the slot a consumer frees. */
    struct blocked_producer p = { .q = q, .timeout = -1 };
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, produce_waiting, &p));
    for (int i = 0; i < 1000; i++)
        sched_yield(); /* let it park (or spin: either way it waits) */
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == EV(1));
    CHECK_OK(pthread_join(t, NULL));
    CHECK_OK(p.result);
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == EV(2));
    CHECK_RC(seda_queue_dequeue_many(q, &ev, &stamp, 1), 1);
    CHECK(ev == EV(42));
    CHECK_EQ(stamp, 7);

    /* Close wakes a producer waiting for room, with -EPIPE. */
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(seda_queue_enqueue(q, EV(2)));
    p.result = 1;
    CHECK_OK(pthread_create(&t, NULL, produce_waiting, &p));
    for (int i = 0; i < 1000; i++)
        sched_yield();
    CHECK_OK(seda_queue_close(q));
    CHECK_OK(pthread_join(t, NULL));
    CHECK_RC(p.result, -EPIPE);
    CHECK_EQ(seda_queue_destroy(q, NULL, NULL), 2);
}

/* ---- an eventfd notifier shared by many queues keeps no stale wake-ups ---- */

/* 64 queues share one eventfd notifier served by 8 interchangeable consumers
 * (an executor, or event loops watching the descriptor). A consumer that
 * prepares, finds work and cancels must take back a wake-up meant for it,
 * or units pile up in the eventfd: once the traffic stops the consumers keep
 * waking for nothing, and the descriptor stays readable for an epoll loop. */
enum { FAN_QUEUES = 64, FAN_CONSUMERS = 8, FAN_PRODUCERS = 2 };

struct fanin {
    seda_notifier_t *n;
    seda_queue_t *q[FAN_QUEUES];
    uint64_t total;
    _Atomic uint64_t consumed, wakeups, idle_wakeups;
    _Atomic int stop;
};

static int fan_scan(struct fanin *f)
{
    void *ev[16];
    int got = 0;
    for (int i = 0; i < FAN_QUEUES; i++) {
        int k = seda_queue_dequeue_many(f->q[i], ev, NULL, 16);
        if (k > 0)
            got += k;
    }
    if (got)
        atomic_fetch_add(&f->consumed, (uint64_t)got);
    return got;
}

static int fan_any(struct fanin *f)
{
    for (int i = 0; i < FAN_QUEUES; i++)
        if (seda_queue_size(f->q[i]))
            return 1;
    return 0;
}

static void *fan_consumer(void *arg)
{
    struct fanin *f = arg;
    pthread_setname_np(pthread_self(), "fan-consumer");
    for (;;) {
        if (fan_scan(f))
            continue;
        if (atomic_load(&f->stop))
            return NULL;
        uint32_t epoch = seda_notifier_prepare(f->n);
        if (fan_any(f) || atomic_load(&f->stop)) {
            seda_notifier_cancel(f->n);
            continue;
        }
        int r = seda_notifier_park(f->n, epoch, -1);
        CHECK(r == 0 || r == -EINTR);
        atomic_fetch_add(&f->wakeups, 1);
        /* Woken with every event consumed and no stop: a wake-up for nothing. */
        if (atomic_load(&f->consumed) == f->total && !atomic_load(&f->stop))
            atomic_fetch_add(&f->idle_wakeups, 1);
    }
}

struct fan_producer {
    struct fanin *f;
    uint64_t count;
    unsigned first;
};

static void *fan_produce(void *arg)
{
    struct fan_producer *p = arg;
    /* Batches of 4, so that a wake asks for several consumers. */
    void *batch[4] = { EV(1), EV(2), EV(3), EV(4) };
    for (uint64_t i = 0; i < p->count / 4; i++) {
        seda_queue_t *q = p->f->q[(p->first + i) % FAN_QUEUES];
        while (seda_queue_enqueue_many(q, batch, 4) == -EAGAIN)
            sched_yield();
    }
    return NULL;
}

static void test_eventfd_no_stale_wakeups(uint64_t events)
{
    struct fanin f = { .total = events };
    CHECK_OK(seda_notifier_create(&f.n, SEDA_NOTIFIER_EVENTFD));
    for (int i = 0; i < FAN_QUEUES; i++)
        CHECK_OK(seda_queue_create(&f.q[i], 1024, f.n));
    pthread_t c[FAN_CONSUMERS], p[FAN_PRODUCERS];
    struct fan_producer pa[FAN_PRODUCERS];
    for (int i = 0; i < FAN_CONSUMERS; i++)
        CHECK_OK(pthread_create(&c[i], NULL, fan_consumer, &f));
    for (int i = 0; i < FAN_PRODUCERS; i++) {
        pa[i] = (struct fan_producer){ &f, events / FAN_PRODUCERS, (unsigned)i * 7 };
        CHECK_OK(pthread_create(&p[i], NULL, fan_produce, &pa[i]));
    }
    for (int i = 0; i < FAN_PRODUCERS; i++)
        CHECK_OK(pthread_join(p[i], NULL));
    while (atomic_load(&f.consumed) < f.total)
        sched_yield();
    /* Idle: every consumer asleep in park, none claimed by a wake, no unit
     * pending. (A consumer between prepare and park when the last wake
     * bumped the epoch returns from park once more without sleeping: it is
     * not asleep yet, so this waits for it.) Units still in the eventfd
     * keep the consumers cycling through them until none is left; count
     * those wake-ups. */
    struct pollfd pfd = { .fd = seda_notifier_fd(f.n), .events = POLLIN };
    int64_t deadline = seda_clock_now(NULL) + 20000000000LL; /* liveness guard */
    while (seda_notifier_waiters(f.n) != FAN_CONSUMERS || poll(&pfd, 1, 0) != 0 ||
           threads_sleeping("fan-consumer") != FAN_CONSUMERS) {
        CHECK(seda_clock_now(NULL) < deadline);
        sched_yield();
    }
    /* A wake-up pending at the end belongs to a consumer still between
     * prepare and park, at most one each, and wakes at most every consumer
     * once before it is consumed: at most FAN_CONSUMERS^2 wake-ups for
     * nothing. A pile-up of stale units gives thousands. */
    uint64_t idle = atomic_load(&f.idle_wakeups);
    printf("  %llu events: %llu wake-ups, %llu with nothing to do, %llu wake syscalls\n",
           (unsigned long long)events, (unsigned long long)atomic_load(&f.wakeups),
           (unsigned long long)idle, (unsigned long long)seda_notifier_wake_syscalls(f.n));
    CHECK(idle <= FAN_CONSUMERS * FAN_CONSUMERS);
    /* And it stays quiet: nobody writes, so nobody wakes. */
    uint64_t before = atomic_load(&f.wakeups);
    for (int i = 0; i < 1000; i++)
        sched_yield();
    CHECK_EQ(atomic_load(&f.wakeups), before);
    CHECK_EQ(poll(&pfd, 1, 0), 0);
    atomic_store(&f.stop, 1);
    seda_notifier_wake(f.n, INT32_MAX);
    for (int i = 0; i < FAN_CONSUMERS; i++)
        CHECK_OK(pthread_join(c[i], NULL));
    for (int i = 0; i < FAN_QUEUES; i++)
        CHECK_EQ(seda_queue_destroy(f.q[i], NULL, NULL), 0);
    seda_notifier_destroy(f.n);
}

int main(void)
{
    test_eventfd_no_stale_wakeups(200000);
    test_no_syscall_without_waiters();
    test_enqueue_wakes_parked_consumer();
    test_close_wakes_all();
    test_shared_notifier(0);
    test_shared_notifier(SEDA_NOTIFIER_EVENTFD);
    test_eventfd_readable();
    test_enqueue_waits_for_room();
    puts("notifier: ok");
    return 0;
}
