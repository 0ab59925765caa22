/* The queue's single-threaded contract: full, empty, close, batches, wrap-around. */
#include <errno.h>
#include <stdint.h>

#include "test.h"

#define EV(i) ((void *)(uintptr_t)(0x1000 + (i)))

static void test_create_arguments(void)
{
    seda_queue_t *q = NULL;
    CHECK_RC(seda_queue_create(&q, 0, NULL), -EINVAL);
    CHECK_RC(seda_queue_create(&q, (size_t)SEDA_QUEUE_MAX_CAPACITY + 1, NULL), -EINVAL);
    CHECK_RC(seda_queue_create(NULL, 8, NULL), -EINVAL);
    CHECK_OK(seda_queue_create(&q, 5, NULL));
    CHECK_EQ(seda_queue_capacity(q), 8); /* rounded up to a power of two */
    CHECK(seda_queue_notifier(q) != NULL);
    CHECK_EQ(seda_queue_destroy(q, NULL, NULL), 0);
    CHECK_OK(seda_queue_create(&q, 1, NULL));
    CHECK_EQ(seda_queue_capacity(q), 2); /* the smallest ring */
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(seda_queue_enqueue(q, EV(2)));
    CHECK_RC(seda_queue_enqueue(q, EV(3)), -EAGAIN);
    seda_queue_destroy(q, NULL, NULL);
}

static void test_full_and_empty(void)
{
    seda_queue_t *q;
    void *ev;
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    CHECK_RC(seda_queue_dequeue(q, &ev), -EAGAIN);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(seda_queue_enqueue(q, EV(i)));
        CHECK_EQ(seda_queue_size(q), i + 1);
    }
    CHECK_RC(seda_queue_enqueue(q, EV(99)), -EAGAIN);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(seda_queue_dequeue(q, &ev));
        CHECK(ev == EV(i));
    }
    CHECK_RC(seda_queue_dequeue(q, &ev), -EAGAIN);
    CHECK_EQ(seda_queue_size(q), 0);
    seda_queue_destroy(q, NULL, NULL);
}

static void test_wrap_around(void)
{
    /* Many laps over a small ring, with the fill level varying, so every
     * slot's sequence number goes round many times. */
    seda_queue_t *q;
    CHECK_OK(seda_queue_create(&q, 8, NULL));
    uintptr_t next_in = 0, next_out = 0;
    for (int lap = 0; lap < 10000; lap++) {
        int in = 1 + lap % 8, out = 1 + (lap * 7) % 8;
        for (int i = 0; i < in; i++) {
            int r = seda_queue_enqueue(q, EV(next_in));
            if (r == -EAGAIN) {
                CHECK_EQ(seda_queue_size(q), 8);
                break;
            }
            CHECK_OK(r);
            next_in++;
        }
        for (int i = 0; i < out; i++) {
            void *ev;
            int r = seda_queue_dequeue(q, &ev);
            if (r == -EAGAIN) {
                CHECK_EQ(next_out, next_in);
                break;
            }
            CHECK_OK(r);
            CHECK(ev == EV(next_out));
            next_out++;
        }
    }
    CHECK(next_in > 8 * 1000); /* a thousand laps round the ring */
    seda_queue_destroy(q, NULL, NULL);
}

static void test_batches_all_or_nothing(void)
{
    seda_queue_t *q;
    void *in[16], *out[16];
    uint32_t stamps[16];
    for (int i = 0; i < 16; i++)
        in[i] = EV(i);
    CHECK_OK(seda_queue_create(&q, 8, NULL));
    CHECK_RC(seda_queue_enqueue_many(q, in, 0), 0);
    CHECK_RC(seda_queue_enqueue_many(q, in, 9), -EINVAL); /* larger than capacity */
    CHECK_RC(seda_queue_enqueue_many_at(q, in, 5, 42), 5);
    /* 3 free, 4 asked: nothing goes in. */
    CHECK_RC(seda_queue_enqueue_many(q, in + 5, 4), -EAGAIN);
    CHECK_EQ(seda_queue_size(q), 5);
    CHECK_RC(seda_queue_enqueue_many_at(q, in + 5, 3, 7), 3);
    CHECK_RC(seda_queue_enqueue_many(q, in, 1), -EAGAIN);
    /* Dequeue-up-to-N takes what is there, in order, with the stamps. */
    CHECK_RC(seda_queue_dequeue_many(q, out, stamps, 0), -EINVAL);
    CHECK_RC(seda_queue_dequeue_many(q, out, stamps, 6), 6);
    for (int i = 0; i < 6; i++) {
        CHECK(out[i] == EV(i));
        CHECK_EQ(stamps[i], i < 5 ? 42 : 7);
    }
    CHECK_RC(seda_queue_dequeue_many(q, out, NULL, 16), 2);
    CHECK(out[0] == EV(6) && out[1] == EV(7));
    CHECK_RC(seda_queue_dequeue_many(q, out, NULL, 16), -EAGAIN);
    /* A batch that straddles the end of the ring. */
    CHECK_RC(seda_queue_enqueue_many(q, in, 8), 8);
    CHECK_RC(seda_queue_dequeue_many(q, out, NULL, 8), 8);
    for (int i = 0; i < 8; i++)
        CHECK(out[i] == EV(i));
    seda_queue_destroy(q, NULL, NULL);
}

static void test_close(void)
{
    seda_queue_t *q;
    void *ev, *batch[2] = { EV(7), EV(8) };
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(seda_queue_enqueue(q, EV(2)));
    CHECK_EQ(seda_queue_is_closed(q), 0);
    CHECK_OK(seda_queue_close(q));
    CHECK_EQ(seda_queue_is_closed(q), 1);
    CHECK_RC(seda_queue_close(q), -EPIPE);
    CHECK_RC(seda_queue_enqueue(q, EV(3)), -EPIPE);
    CHECK_RC(seda_queue_enqueue_many(q, batch, 2), -EPIPE);
    CHECK_EQ(seda_queue_size(q), 2);
    /* Consumers drain what was accepted, then see -EPIPE, never -EAGAIN. */
    CHECK_OK(seda_queue_dequeue(q, &ev));
    CHECK(ev == EV(1));
    CHECK_RC(seda_queue_dequeue_many(q, &ev, NULL, 4), 1);
    CHECK(ev == EV(2));
    CHECK_RC(seda_queue_dequeue(q, &ev), -EPIPE);
    CHECK_RC(seda_queue_dequeue_many(q, &ev, NULL, 4), -EPIPE);
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 1, -1), -EPIPE);
    /* A full queue that is closed says closed, not full. */
    seda_queue_destroy(q, NULL, NULL);
    CHECK_OK(seda_queue_create(&q, 2, NULL));
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(seda_queue_enqueue(q, EV(1)));
    CHECK_OK(seda_queue_close(q));
    CHECK_RC(seda_queue_enqueue(q, EV(2)), -EPIPE);
    seda_queue_destroy(q, NULL, NULL);
}

static void count_drained(void *ctx, void *ev)
{
    uintptr_t *expect = ctx;
    CHECK(ev == EV(*expect));
    (*expect)++;
}

static void test_destroy_drains(void)
{
    seda_queue_t *q;
    CHECK_OK(seda_queue_create(&q, 16, NULL));
    for (int i = 0; i < 10; i++)
        CHECK_OK(seda_queue_enqueue(q, EV(i)));
    void *ev;
    CHECK_OK(seda_queue_dequeue(q, &ev));
    uintptr_t next = 1;
    CHECK_EQ(seda_queue_destroy(q, count_drained, &next), 9);
    CHECK_EQ(next, 10);
}

static void test_timed_wait(void)
{
    seda_queue_t *q;
    void *ev;
    CHECK_OK(seda_queue_create(&q, 4, NULL));
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 1, 0), -ETIMEDOUT);
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 1, 2000000), -ETIMEDOUT);
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 0, 0), -EINVAL);
    CHECK_OK(seda_queue_enqueue(q, EV(5)));
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 1, 0), 1);
    CHECK(ev == EV(5));
    /* "As long as it takes" written as the largest timeout: the deadline
     * saturates instead of overflowing (UBSan flags the overflow). */
    CHECK_OK(seda_queue_enqueue_wait(q, EV(6), 0, INT64_MAX));
    CHECK_RC(seda_queue_dequeue_wait(q, &ev, NULL, 1, INT64_MAX), 1);
    CHECK(ev == EV(6));
    seda_queue_destroy(q, NULL, NULL);
}

static void test_errors_and_version(void)
{
    CHECK(seda_strerror(-EAGAIN)[0] != '\0');
    CHECK(seda_strerror(-EPIPE) != seda_strerror(-EAGAIN));
    CHECK(seda_version()[0] == '0' + SEDA_VERSION_MAJOR);
    uint32_t f = seda_features();
    CHECK(f & SEDA_FEATURE_EPOLL);
    CHECK(f & SEDA_FEATURE_EVENTFD);
    CHECK_EQ(seda_features(), f);
}

int main(void)
{
    test_create_arguments();
    test_full_and_empty();
    test_wrap_around();
    test_batches_all_or_nothing();
    test_close();
    test_destroy_drains();
    test_timed_wait();
    test_errors_and_version();
    puts("queue contract: ok");
    return 0;
}
