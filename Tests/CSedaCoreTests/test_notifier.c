/*
 * The notifier: no system call when nobody is parked, a parked consumer is
 * woken by an enqueue, close wakes every parked thread, one notifier serves
 * several queues, and the eventfd kind is readable when it should be.
 */
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

int main(void)
{
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
