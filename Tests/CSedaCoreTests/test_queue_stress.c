/*
 * Many producers and consumers on one queue: no event lost, none duplicated,
 * and each consumer sees each producer's events in the order they were sent.
 *   usage: test_queue_stress [PRODUCERS [CONSUMERS [ITEMS [CAPACITY]]]]
 *   defaults: 4 4 10000000 1024
 * Producers mix single and all-or-nothing batch enqueues; consumers mix single
 * and batch dequeues and park on the notifier; the run ends with a close.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "test.h"

#define SEQ_BITS 40
#define MAX_THREADS 64

static seda_queue_t *queue;
static unsigned producers, consumers;
static uint64_t per_producer;
static uint64_t max_batch;                  /* min(16, capacity) */
static _Atomic uint64_t *seen[MAX_THREADS]; /* one bit per event, per producer */
static _Atomic uint64_t consumed_total;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *produce(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull * (id + 1), sent = 0;
    void *batch[16];
    while (sent < per_producer) {
        uint64_t n = 1 + rng_next(&rng) % max_batch;
        if (n > per_producer - sent)
            n = per_producer - sent;
        for (uint64_t i = 0; i < n; i++)
            batch[i] = (void *)(((id + 1) << SEQ_BITS) | (sent + i));
        int r;
        for (unsigned spins = 0;; spins++) {
            r = n == 1 ? seda_queue_enqueue(queue, batch[0])
                       : seda_queue_enqueue_many(queue, batch, n);
            if (r != -EAGAIN)
                break;
            if (spins > 16)
                sched_yield();
        }
        CHECK_RC(r, n == 1 ? 0 : (int)n);
        sent += n;
    }
    return NULL;
}

static void *consume(void *arg)
{
    uint64_t rng = 0xD1B54A32D192ED03ull * ((uintptr_t)arg + 1);
    int64_t last[MAX_THREADS];
    for (unsigned p = 0; p < producers; p++)
        last[p] = -1;
    void *batch[32];
    uint64_t count = 0;
    for (;;) {
        size_t max = 1 + rng_next(&rng) % 32;
        int r = seda_queue_dequeue_wait(queue, batch, NULL, max, -1);
        if (r == -EPIPE)
            break;
        CHECK(r >= 1 && (size_t)r <= max);
        for (int i = 0; i < r; i++) {
            uint64_t v = (uint64_t)(uintptr_t)batch[i];
            uint64_t p = (v >> SEQ_BITS) - 1, seq = v & ((1ull << SEQ_BITS) - 1);
            CHECK(p < producers && seq < per_producer);
            /* Per-producer order, as this consumer sees it. */
            CHECK((int64_t)seq > last[p]);
            last[p] = (int64_t)seq;
            uint64_t bit = 1ull << (seq % 64);
            uint64_t old = atomic_fetch_or_explicit(&seen[p][seq / 64], bit, memory_order_relaxed);
            if (old & bit) {
                fprintf(stderr, "duplicate: producer %llu event %llu\n", (unsigned long long)p,
                        (unsigned long long)seq);
                exit(1);
            }
        }
        count += (uint64_t)r;
    }
    atomic_fetch_add(&consumed_total, count);
    return NULL;
}

int main(int argc, char **argv)
{
    producers = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
    consumers = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    uint64_t items = argc > 3 ? strtoull(argv[3], NULL, 10) : 10000000;
    size_t capacity = argc > 4 ? (size_t)strtoull(argv[4], NULL, 10) : 1024;
    if (producers < 1 || producers > MAX_THREADS || consumers < 1 || consumers > MAX_THREADS ||
        items < producers) {
        fprintf(stderr, "usage: %s [PRODUCERS 1-64 [CONSUMERS 1-64 [ITEMS [CAPACITY]]]]\n",
                argv[0]);
        return 1;
    }
    per_producer = items / producers;
    for (unsigned p = 0; p < producers; p++) {
        seen[p] = calloc(per_producer / 64 + 1, sizeof(uint64_t));
        CHECK(seen[p] != NULL);
    }
    CHECK_OK(seda_queue_create(&queue, capacity, NULL));
    max_batch = seda_queue_capacity(queue) < 16 ? seda_queue_capacity(queue) : 16;

    pthread_t pt[MAX_THREADS], ct[MAX_THREADS];
    for (uintptr_t c = 0; c < consumers; c++)
        CHECK_OK(pthread_create(&ct[c], NULL, consume, (void *)c));
    for (uintptr_t p = 0; p < producers; p++)
        CHECK_OK(pthread_create(&pt[p], NULL, produce, (void *)p));
    for (unsigned p = 0; p < producers; p++)
        CHECK_OK(pthread_join(pt[p], NULL));
    CHECK_OK(seda_queue_close(queue));
    for (unsigned c = 0; c < consumers; c++)
        CHECK_OK(pthread_join(ct[c], NULL));

    CHECK_EQ(atomic_load(&consumed_total), per_producer * producers);
    for (unsigned p = 0; p < producers; p++) {
        for (uint64_t s = 0; s < per_producer; s++) {
            if (!(atomic_load_explicit(&seen[p][s / 64], memory_order_relaxed) &
                  (1ull << (s % 64)))) {
                fprintf(stderr, "lost: producer %u event %llu\n", p, (unsigned long long)s);
                return 1;
            }
        }
        free(seen[p]);
    }
    CHECK_EQ(seda_queue_destroy(queue, NULL, NULL), 0);
    printf("queue stress: %uP%uC %llu events, capacity %zu: ok\n", producers, consumers,
           (unsigned long long)(per_producer * producers), capacity);
    return 0;
}
