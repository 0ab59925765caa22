/*
 * Two stages' worth of Seda from C: a producer thread sends numbered events
 * through a bounded queue, in batches, to a consumer that parks when the
 * queue is empty; closing the queue ends the run.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>

#include <seda/seda.h>

enum { EVENTS = 100000, BATCH = 16 };

static void *producer(void *arg)
{
    seda_queue_t *q = arg;
    void *batch[BATCH];
    for (uintptr_t next = 1; next <= EVENTS;) {
        size_t n = 0;
        while (n < BATCH && next + n <= EVENTS) {
            batch[n] = (void *)(next + n);
            n++;
        }
        int r = seda_queue_enqueue_many(q, batch, n);
        if (r == -EAGAIN) { /* full: the consumer is behind, let it run */
            sched_yield();
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "enqueue: %s\n", seda_strerror(r));
            return NULL;
        }
        next += n;
    }
    seda_queue_close(q); /* the consumer drains what is left, then sees -EPIPE */
    return NULL;
}

int main(void)
{
    seda_queue_t *q;
    int r = seda_queue_create(&q, 256, NULL);
    if (r < 0) {
        fprintf(stderr, "seda_queue_create: %s\n", seda_strerror(r));
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, producer, q);
    void *events[64];
    uint64_t sum = 0, count = 0;
    while ((r = seda_queue_dequeue_wait(q, events, NULL, 64, -1)) > 0) {
        for (int i = 0; i < r; i++)
            sum += (uintptr_t)events[i];
        count += (uint64_t)r;
    }
    pthread_join(t, NULL);
    seda_queue_destroy(q, NULL, NULL);
    uint64_t want = (uint64_t)EVENTS * (EVENTS + 1) / 2;
    printf("seda %s: %llu events through the queue, sum %llu (%s)\n", seda_version(),
           (unsigned long long)count, (unsigned long long)sum, sum == want ? "ok" : "WRONG");
    return r == -EPIPE && count == EVENTS && sum == want ? 0 : 1;
}
