/*
 * Timers with their own thread and the real clock: delivery into a queue in
 * deadline order, an earlier add waking the sleeping thread, a manual clock
 * driving the thread, and adds and cancels from several threads while the
 * timer thread fires. Asserts order and completeness, never durations (the
 * generous waits below only turn a hang into a failure).
 *
 * Usage: test_timer_threads [threads [timers_per_thread]]  (default 3 3000)
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "seda/clock.h"
#include "seda/queue.h"
#include "seda/timer.h"
#include "test.h"

#define MS INT64_C(1000000)
#define HANG_GUARD (120 * 1000 * MS) /* a wait that long means a lost wake-up */

static void no_undeliverable(void *ctx, void *target, void *event, int code)
{
    (void)ctx, (void)target, (void)event;
    fprintf(stderr, "unexpected undeliverable timer, code %d\n", code);
    exit(1);
}

struct item {
    int64_t deadline;
};

static void *take_one(seda_queue_t *q)
{
    void *ev = NULL;
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 1, HANG_GUARD), 1);
    return ev;
}

static void test_short_timers_in_order(void)
{
    seda_timers_t *t;
    seda_queue_t *q;
    CHECK_OK(seda_timers_create(&t, NULL, 0, no_undeliverable, NULL));
    CHECK_OK(seda_queue_create(&q, 16, NULL));
    CHECK_OK(seda_timers_start(t, "test-timers"));
    CHECK_RC(seda_timers_start(t, NULL), -EALREADY);
    const int64_t delays[] = { 30 * MS, 5 * MS, 20 * MS, 10 * MS, 25 * MS, 15 * MS, 12 * MS };
    enum { N = sizeof delays / sizeof delays[0] };
    struct item it[N];
    int64_t now = seda_clock_now(NULL);
    for (int i = 0; i < N; i++) {
        it[i].deadline = now + delays[i];
        CHECK_OK(
            seda_timers_add_at(t, it[i].deadline, seda_timer_deliver_to_queue, q, &it[i], NULL));
    }
    int64_t last = 0;
    for (int i = 0; i < N; i++) {
        struct item *x = take_one(q);
        CHECK(seda_clock_now(NULL) >= x->deadline); /* not before its deadline */
        CHECK(x->deadline > last);                  /* deadline order */
        last = x->deadline;
    }
    /* The counters move when the poll settles, just after the deliveries:
     * the consumer may be faster. */
    seda_timers_stats_t s;
    for (seda_timers_stats(t, &s); s.pending != 0; seda_timers_stats(t, &s))
        usleep(1000);
    CHECK_EQ(s.fired, N);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    seda_queue_destroy(q, NULL, NULL);
}

static void count_hand_back(void *ctx, void *target, void *event)
{
    (void)target, (void)event;
    (*(int *)ctx)++;
}

static void test_earlier_add_wakes_thread(void)
{
    /* The thread sleeps until an hour from now; an add 5 ms out must wake it. */
    seda_timers_t *t;
    seda_queue_t *q;
    struct item far, near;
    CHECK_OK(seda_timers_create(&t, NULL, 0, no_undeliverable, NULL));
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    CHECK_OK(seda_timers_start(t, NULL));
    far.deadline = seda_clock_now(NULL) + 3600 * 1000 * MS;
    CHECK_OK(seda_timers_add_at(t, far.deadline, seda_timer_deliver_to_queue, q, &far, NULL));
    usleep(2000); /* let the thread go to sleep (either way the test is valid) */
    CHECK_OK(seda_timers_add_after(t, 5 * MS, seda_timer_deliver_to_queue, q, &near, NULL));
    CHECK(take_one(q) == &near);
    /* A deadline already past is delivered at once too. */
    struct item past;
    CHECK_OK(seda_timers_add_at(t, 0, seda_timer_deliver_to_queue, q, &past, NULL));
    CHECK(take_one(q) == &past);
    /* Destroy stops the thread and hands back the one still pending. */
    int handed = 0;
    CHECK_EQ(seda_timers_destroy(t, count_hand_back, &handed), 1);
    CHECK_EQ(handed, 1);
    seda_queue_destroy(q, NULL, NULL);
}

static void test_thread_on_manual_clock(void)
{
    /* The manual clock moves without telling the thread; it still notices. */
    seda_clock_t *c;
    seda_timers_t *t;
    seda_queue_t *q;
    struct item a, b;
    CHECK_OK(seda_clock_manual_create(&c, 1000 * MS));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    CHECK_OK(seda_timers_start(t, "test-manual"));
    a.deadline = 1010 * MS;
    b.deadline = 1020 * MS;
    CHECK_OK(seda_timers_add_at(t, b.deadline, seda_timer_deliver_to_queue, q, &b, NULL));
    CHECK_OK(seda_timers_add_at(t, a.deadline, seda_timer_deliver_to_queue, q, &a, NULL));
    CHECK_OK(seda_clock_manual_advance(c, 10 * MS));
    CHECK(take_one(q) == &a);
    void *ev;
    CHECK_RC(seda_queue_dequeue(q, &ev), -EAGAIN); /* b is not due: the clock stands still */
    CHECK_OK(seda_clock_manual_advance(c, 10 * MS));
    CHECK(take_one(q) == &b);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    seda_queue_destroy(q, NULL, NULL);
    seda_clock_destroy(c);
}

static void test_thread_at_clock_end(void)
{
    /* A deadline at the clock's end fires when the clock gets there (it
     * used to never fire, with the thread spinning meanwhile). */
    seda_clock_t *c;
    seda_timers_t *t;
    seda_queue_t *q;
    struct item a = { INT64_MAX };
    CHECK_OK(seda_clock_manual_create(&c, 1000 * MS));
    CHECK_OK(seda_timers_create(&t, c, MS, no_undeliverable, NULL));
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    CHECK_OK(seda_timers_start(t, "test-end"));
    CHECK_OK(seda_timers_add_at(t, a.deadline, seda_timer_deliver_to_queue, q, &a, NULL));
    CHECK_OK(seda_clock_manual_set(c, INT64_MAX - 1));
    void *ev;
    CHECK_RC(seda_queue_dequeue(q, &ev), -EAGAIN);
    CHECK_OK(seda_clock_manual_set(c, INT64_MAX));
    CHECK(take_one(q) == &a);
    CHECK_EQ(seda_timers_destroy(t, NULL, NULL), 0);
    seda_queue_destroy(q, NULL, NULL);
    seda_clock_destroy(c);
}

/* ---- adds and cancels from several threads while the timer thread fires ---- */

struct rec {
    _Atomic int fired;  /* received by the consumer */
    _Atomic int handed; /* handed back by cancel or cancel_all */
};

struct shared {
    seda_timers_t *t;
    seda_queue_t *q;
    struct rec *recs;
    int per_thread;
};

struct adder {
    struct shared *sh;
    int index;
    uint64_t rng;
    int cancelled, busy;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1du;
}

static void *adder_main(void *arg)
{
    struct adder *a = arg;
    struct shared *sh = a->sh;
    int n = sh->per_thread;
    seda_timer_id_t *ids = calloc((size_t)n, sizeof *ids);
    CHECK(ids != NULL);
    struct rec *mine = sh->recs + (size_t)a->index * (size_t)n;
    for (int i = 0; i < n; i++) {
        int64_t delay = (int64_t)(rnd(&a->rng) % (20 * MS));
        CHECK_OK(seda_timers_add_after(sh->t, delay, seda_timer_deliver_to_queue, sh->q, &mine[i],
                                       &ids[i]));
        if (rnd(&a->rng) % 3 == 0) {
            int j = (int)(rnd(&a->rng) % (uint64_t)(i + 1));
            void *ev = NULL;
            int r;
            /* -EBUSY: its delivery is running right now; ask again. */
            while ((r = seda_timers_cancel(sh->t, ids[j], &ev)) == -EBUSY) {
                a->busy++;
                sched_yield();
            }
            if (r == 0) {
                CHECK(ev == &mine[j]);
                atomic_fetch_add(&mine[j].handed, 1);
                a->cancelled++;
            } else {
                CHECK_RC(r, -ENOENT);
            }
        }
        if (i % 16 == 0)
            usleep(200); /* spread the adds over time so the thread fires in between */
    }
    free(ids);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct shared *sh = arg;
    void *evs[16];
    for (unsigned round = 0;; round++) {
        int k = seda_queue_dequeue_wait(sh->q, evs, NULL, 16, HANG_GUARD);
        if (k == -EPIPE)
            return NULL;
        CHECK(k > 0);
        for (int i = 0; i < k; i++)
            atomic_fetch_add(&((struct rec *)evs[i])->fired, 1);
        if (round % 4 == 0)
            sched_yield(); /* let the queue fill now and then: retries */
    }
}

static void hand_back_rec(void *ctx, void *target, void *event)
{
    (void)target;
    atomic_fetch_add(&((struct rec *)event)->handed, 1);
    (*(int *)ctx)++;
}

static void test_concurrent_add_cancel(int threads, int per_thread)
{
    struct shared sh = { .per_thread = per_thread };
    size_t total = (size_t)threads * (size_t)per_thread;
    sh.recs = calloc(total, sizeof *sh.recs);
    CHECK(sh.recs != NULL);
    CHECK_OK(seda_timers_create(&sh.t, NULL, 0, no_undeliverable, NULL));
    CHECK_OK(seda_queue_create(&sh.q, 64, NULL)); /* small: bursts meet a full queue */
    CHECK_OK(seda_timers_start(sh.t, "test-timers"));
    pthread_t consumer, th[8];
    struct adder ad[8];
    CHECK_EQ(pthread_create(&consumer, NULL, consumer_main, &sh), 0);
    for (int i = 0; i < threads; i++) {
        ad[i] =
            (struct adder){ .sh = &sh, .index = i, .rng = 0x9e3779b97f4a7c15u * (uint64_t)(i + 1) };
        CHECK_EQ(pthread_create(&th[i], NULL, adder_main, &ad[i]), 0);
    }
    /* A cancel-all in the middle of it all. */
    usleep(5000);
    int handed_all = 0;
    int64_t n_all = seda_timers_cancel_all(sh.t, hand_back_rec, &handed_all);
    CHECK(n_all >= 0);
    CHECK_EQ(n_all, handed_all);
    int cancelled = handed_all, busy = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        cancelled += ad[i].cancelled;
        busy += ad[i].busy;
    }
    /* Every timer is due within 20 ms of its add: wait for the wheel to empty. */
    seda_timers_stats_t s;
    for (;;) {
        seda_timers_stats(sh.t, &s);
        if (s.pending == 0)
            break;
        usleep(1000);
    }
    CHECK_OK(seda_queue_close(sh.q)); /* nothing is pending: nothing can meet the close */
    pthread_join(consumer, NULL);
    CHECK_EQ(seda_timers_destroy(sh.t, NULL, NULL), 0);
    CHECK_EQ(seda_queue_destroy(sh.q, NULL, NULL), 0);

    size_t fired = 0;
    for (size_t i = 0; i < total; i++) {
        int f = atomic_load(&sh.recs[i].fired), h = atomic_load(&sh.recs[i].handed);
        if (f + h != 1) {
            fprintf(stderr, "timer %zu: fired %d times, handed back %d times\n", i, f, h);
            exit(1);
        }
        fired += (size_t)f;
    }
    CHECK_EQ(s.added, total);
    CHECK_EQ(s.fired, fired);
    CHECK_EQ(s.cancelled, (uint64_t)cancelled);
    CHECK_EQ(s.undeliverable, 0);
    CHECK_EQ(fired + (size_t)cancelled, total);
    printf("%zu timers: %zu fired, %d cancelled (%lld by cancel-all), %llu retries, %d busy\n",
           total, fired, cancelled, (long long)n_all, (unsigned long long)s.retries, busy);
    free(sh.recs);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 3;
    int per_thread = argc > 2 ? atoi(argv[2]) : 3000;
    if (threads < 1 || threads > 8 || per_thread < 1) {
        fprintf(stderr, "usage: %s [threads(1-8) [timers_per_thread]]\n", argv[0]);
        return 1;
    }
    test_short_timers_in_order();
    test_earlier_add_wakes_thread();
    test_thread_on_manual_clock();
    test_thread_at_clock_end();
    test_concurrent_add_cancel(threads, per_thread);
    return 0;
}
