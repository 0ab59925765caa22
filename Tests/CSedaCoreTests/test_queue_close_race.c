/*
 * Close racing with enqueue: every event whose enqueue returned success is
 * dequeued exactly once, and after close no enqueue succeeds.
 *   usage: test_queue_close_race [ROUNDS]     (default 200)
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

#define PRODUCERS 3

static seda_queue_t *queue;
static _Atomic uint64_t accepted, dequeued;
static _Atomic int closed_seen;

static void *produce(void *arg)
{
    (void)arg;
    uint64_t mine = 0;
    void *batch[4] = { (void *)1, (void *)2, (void *)3, (void *)4 };
    for (unsigned i = 0;; i++) {
        int r = (i & 1) ? seda_queue_enqueue(queue, (void *)1)
                        : seda_queue_enqueue_many(queue, batch, 4);
        if (r == -EPIPE)
            break;
        if (r == -EAGAIN) {
            sched_yield();
            continue;
        }
        CHECK(r == 0 || r == 4);
        mine += (i & 1) ? 1 : 4;
        /* Once any thread saw the close, nothing may be accepted again. */
        if (atomic_load(&closed_seen))
            CHECK(seda_queue_is_closed(queue));
    }
    atomic_fetch_add(&accepted, mine);
    return NULL;
}

static void *consume(void *arg)
{
    (void)arg;
    void *ev[8];
    uint64_t mine = 0;
    for (;;) {
        int r = seda_queue_dequeue_wait(queue, ev, NULL, 8, -1);
        if (r == -EPIPE)
            break;
        CHECK(r > 0);
        mine += (uint64_t)r;
    }
    atomic_fetch_add(&dequeued, mine);
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    for (int round = 0; round < rounds; round++) {
        atomic_store(&accepted, 0);
        atomic_store(&dequeued, 0);
        atomic_store(&closed_seen, 0);
        CHECK_OK(seda_queue_create(&queue, 64, NULL));
        pthread_t p[PRODUCERS], c;
        CHECK_OK(pthread_create(&c, NULL, consume, NULL));
        for (int i = 0; i < PRODUCERS; i++)
            CHECK_OK(pthread_create(&p[i], NULL, produce, NULL));
        for (int i = 0; i < round % 50; i++)
            sched_yield();
        CHECK_OK(seda_queue_close(queue));
        atomic_store(&closed_seen, 1);
        void *late = (void *)9;
        CHECK_RC(seda_queue_enqueue(queue, late), -EPIPE);
        for (int i = 0; i < PRODUCERS; i++)
            CHECK_OK(pthread_join(p[i], NULL));
        CHECK_OK(pthread_join(c, NULL));
        CHECK_EQ(atomic_load(&dequeued), atomic_load(&accepted));
        CHECK_EQ(seda_queue_destroy(queue, NULL, NULL), 0);
    }
    printf("queue close race: %d rounds ok\n", rounds);
    return 0;
}
