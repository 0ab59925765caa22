/* The clock: manual set/advance, and the monotonic clock moving forward. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "seda/clock.h"
#include "test.h"

static void test_monotonic(void)
{
    const seda_clock_t *m = seda_clock_monotonic();
    CHECK(m != NULL);
    CHECK(m == seda_clock_monotonic()); /* one static instance */
    int64_t a = seda_clock_now(m);
    int64_t b = seda_clock_now(NULL);
    CHECK(a > 0);
    CHECK(b >= a);
    /* It moves: spin until it does (no threshold on how long that takes). */
    int64_t c;
    do
        c = seda_clock_now(NULL);
    while (c == b);
    CHECK(c > b);
    /* The monotonic clock cannot be moved or destroyed. */
    CHECK_RC(seda_clock_manual_set((seda_clock_t *)m, a + 1000000000), -EINVAL);
    CHECK_RC(seda_clock_manual_advance((seda_clock_t *)m, 1), -EINVAL);
    CHECK_RC(seda_clock_manual_set(NULL, 1), -EINVAL);
    CHECK_RC(seda_clock_manual_advance(NULL, 1), -EINVAL);
    seda_clock_destroy((seda_clock_t *)m); /* no-op */
    seda_clock_destroy(NULL);
    CHECK(seda_clock_now(m) >= c);
}

static void test_manual(void)
{
    seda_clock_t *c = NULL;
    CHECK_RC(seda_clock_manual_create(NULL, 0), -EINVAL);
    CHECK_RC(seda_clock_manual_create(&c, -1), -EINVAL);
    CHECK_OK(seda_clock_manual_create(&c, 1000));
    CHECK_EQ(seda_clock_now(c), 1000);
    CHECK_EQ(seda_clock_now(c), 1000); /* does not move by itself */

    CHECK_OK(seda_clock_manual_advance(c, 500));
    CHECK_EQ(seda_clock_now(c), 1500);
    CHECK_OK(seda_clock_manual_advance(c, 0));
    CHECK_EQ(seda_clock_now(c), 1500);
    CHECK_RC(seda_clock_manual_advance(c, -1), -EINVAL);
    CHECK_EQ(seda_clock_now(c), 1500);

    CHECK_OK(seda_clock_manual_set(c, 2000));
    CHECK_EQ(seda_clock_now(c), 2000);
    CHECK_OK(seda_clock_manual_set(c, 2000));          /* same time: fine */
    CHECK_RC(seda_clock_manual_set(c, 1999), -EINVAL); /* never backwards */
    CHECK_EQ(seda_clock_now(c), 2000);

    /* Overflow is refused and leaves the clock alone. */
    CHECK_OK(seda_clock_manual_set(c, INT64_MAX - 10));
    CHECK_RC(seda_clock_manual_advance(c, 11), -EINVAL);
    CHECK_EQ(seda_clock_now(c), INT64_MAX - 10);
    CHECK_OK(seda_clock_manual_advance(c, 10));
    CHECK_EQ(seda_clock_now(c), INT64_MAX);
    seda_clock_destroy(c);
}

#define THREADS 4
#define STEPS 10000

static void *advancer(void *arg)
{
    seda_clock_t *c = arg;
    for (int i = 0; i < STEPS; i++)
        CHECK_OK(seda_clock_manual_advance(c, 3));
    return NULL;
}

static void *setter(void *arg)
{
    seda_clock_t *c = arg;
    int64_t last = 0;
    for (int i = 0; i < STEPS; i++) {
        int64_t now = seda_clock_now(c);
        CHECK(now >= last); /* readers never see time go back */
        last = now;
        int r = seda_clock_manual_set(c, now + 1);
        CHECK(r == 0 || r == -EINVAL); /* -EINVAL: someone moved it further */
    }
    return NULL;
}

static void test_concurrent(void)
{
    /* Concurrent advances add up exactly. */
    seda_clock_t *c;
    CHECK_OK(seda_clock_manual_create(&c, 0));
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, advancer, c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(seda_clock_now(c), (int64_t)THREADS * STEPS * 3);
    /* Concurrent sets and advances never move it backwards. */
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, i % 2 ? setter : advancer, c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(seda_clock_now(c) >= (int64_t)THREADS * STEPS * 3 + (THREADS / 2) * STEPS * 3);
    seda_clock_destroy(c);
}

int main(void)
{
    test_monotonic();
    test_manual();
    test_concurrent();
    return 0;
}
