/*
 * Queue benchmark kernels. Each scenario is written once, as an always-inline
 * function over a constant table of operations, and instantiated per queue, so
 * the compiler inlines each queue's calls into the same loop shape.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_ring.h>

#include "seda/seda.h"
#include "seda_bench.h"

#define BATCH 32
#define INLINE static inline __attribute__((always_inline))

/* ---- the shared wait policy ------------------------------------------- */

INLINE void backoff(unsigned *spins)
{
    if (++*spins < 64)
        __builtin_ia32_pause();
    else
        sched_yield();
}

/* ---- the queues ---------------------------------------------------------- */

struct ck_q {
    ck_ring_t ring;
    ck_ring_buffer_t *buf;
};

struct mutex_q {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    unsigned waiting_consumers, waiting_producers;
    void **slots;
    size_t mask, head, tail;
};

struct ops {
    void *(*create)(size_t capacity);
    void (*destroy)(void *q);
    bool (*enq)(void *q, void *ev);
    bool (*deq)(void *q, void **ev);
    /* All `n` or nothing. */
    bool (*enq_batch)(void *q, void **evs, size_t n);
    /* Up to max; 0 when empty. */
    size_t (*deq_batch)(void *q, void **evs, size_t max);
};

static void *seda_create(size_t capacity)
{
    seda_queue_t *q;
    return seda_queue_create(&q, capacity, NULL) == 0 ? q : NULL;
}
static void seda_destroy(void *q) { seda_queue_destroy(q, NULL, NULL); }
static inline bool seda_enq(void *q, void *ev) { return seda_queue_enqueue(q, ev) == 0; }
static inline bool seda_deq(void *q, void **ev) { return seda_queue_dequeue(q, ev) == 0; }
static inline bool seda_enq_batch(void *q, void **evs, size_t n)
{
    return seda_queue_enqueue_many(q, evs, n) > 0;
}
static inline size_t seda_deq_batch(void *q, void **evs, size_t max)
{
    int r = seda_queue_dequeue_many(q, evs, NULL, max);
    return r > 0 ? (size_t)r : 0;
}

static void *ck_create(size_t capacity)
{
    struct ck_q *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->buf = aligned_alloc(64, capacity * sizeof(ck_ring_buffer_t));
    if (!q->buf) {
        free(q);
        return NULL;
    }
    ck_ring_init(&q->ring, (unsigned)capacity);
    return q;
}
static void ck_destroy(void *p)
{
    struct ck_q *q = p;
    free(q->buf);
    free(q);
}
static inline bool ck_enq(void *p, void *ev)
{
    struct ck_q *q = p;
    return ck_ring_enqueue_mpmc(&q->ring, q->buf, ev);
}
static inline bool ck_deq(void *p, void **ev)
{
    struct ck_q *q = p;
    return ck_ring_dequeue_mpmc(&q->ring, q->buf, ev);
}
/* ck_ring has no batch call: 32 single calls, each waiting as the policy says. */
static inline bool ck_enq_batch(void *p, void **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned spins = 0;
        while (!ck_enq(p, evs[i]))
            backoff(&spins);
    }
    return true;
}
static inline size_t ck_deq_batch(void *p, void **evs, size_t max)
{
    size_t k = 0;
    while (k < max && ck_deq(p, &evs[k]))
        k++;
    return k;
}

static void *mutex_create(size_t capacity)
{
    struct mutex_q *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->slots = calloc(capacity, sizeof(void *));
    if (!q->slots) {
        free(q);
        return NULL;
    }
    q->mask = capacity - 1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return q;
}
static void mutex_destroy(void *p)
{
    struct mutex_q *q = p;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->slots);
    free(q);
}
/* Like a Java synchronized queue: every operation takes the lock and signals
 * the other side's condition variable when somebody waits on it. The
 * benchmark's threads spin and yield instead of waiting, as for every queue,
 * so the signals are skipped; their test stays in the cost. */
static inline bool mutex_enq_batch(void *p, void **evs, size_t n)
{
    struct mutex_q *q = p;
    pthread_mutex_lock(&q->lock);
    bool ok = q->mask + 1 - (q->tail - q->head) >= n;
    if (ok) {
        for (size_t i = 0; i < n; i++)
            q->slots[(q->tail + i) & q->mask] = evs[i];
        q->tail += n;
        if (q->waiting_consumers)
            pthread_cond_broadcast(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}
static inline size_t mutex_deq_batch(void *p, void **evs, size_t max)
{
    struct mutex_q *q = p;
    pthread_mutex_lock(&q->lock);
    size_t k = q->tail - q->head;
    if (k > max)
        k = max;
    for (size_t i = 0; i < k; i++)
        evs[i] = q->slots[(q->head + i) & q->mask];
    q->head += k;
    if (k && q->waiting_producers)
        pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return k;
}
static inline bool mutex_enq(void *p, void *ev) { return mutex_enq_batch(p, &ev, 1); }
static inline bool mutex_deq(void *p, void **ev) { return mutex_deq_batch(p, ev, 1) == 1; }

static const struct ops seda_ops = { seda_create, seda_destroy, seda_enq, seda_deq,
                                     seda_enq_batch, seda_deq_batch };
static const struct ops ck_ops = { ck_create, ck_destroy, ck_enq, ck_deq,
                                   ck_enq_batch, ck_deq_batch };
static const struct ops mutex_ops = { mutex_create, mutex_destroy, mutex_enq, mutex_deq,
                                      mutex_enq_batch, mutex_deq_batch };

/* ---- threads --------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int seda_bench_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    return CPU_COUNT(&set);
}

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % seda_bench_cpus(), &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

struct run {
    const struct ops *ops;
    void *q;
    uint64_t per_producer;
    bool batch;
    _Atomic int ready;
    _Atomic int go;
    int threads;
};

struct worker {
    struct run *run;
    int cpu;
    uint64_t base; /* first event number (producers) */
};

/* Event n is (void *)(n + 1): never NULL, which is the stop marker. */
#define STOP ((void *)0)

static void start_line(struct run *r)
{
    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        __builtin_ia32_pause();
}

INLINE void produce(const struct ops *o, struct run *r, uint64_t base)
{
    void *q = r->q;
    if (r->batch) {
        void *evs[BATCH];
        for (uint64_t i = 0; i < r->per_producer; i += BATCH) {
            size_t n = r->per_producer - i < BATCH ? (size_t)(r->per_producer - i) : BATCH;
            for (size_t k = 0; k < n; k++)
                evs[k] = (void *)(uintptr_t)(base + i + k + 1);
            unsigned spins = 0;
            while (!o->enq_batch(q, evs, n))
                backoff(&spins);
        }
    } else {
        for (uint64_t i = 0; i < r->per_producer; i++) {
            unsigned spins = 0;
            while (!o->enq(q, (void *)(uintptr_t)(base + i + 1)))
                backoff(&spins);
        }
    }
}

/* Consumes until it takes a STOP; returns a checksum so the loop is not dead. */
INLINE uint64_t consume(const struct ops *o, struct run *r)
{
    void *q = r->q;
    uint64_t sum = 0;
    if (r->batch) {
        void *evs[BATCH];
        for (;;) {
            unsigned spins = 0;
            size_t k;
            while ((k = o->deq_batch(q, evs, BATCH)) == 0)
                backoff(&spins);
            for (size_t i = 0; i < k; i++) {
                if (evs[i] == STOP)
                    return sum; /* STOPs come after every event; see run_threads */
                sum += (uintptr_t)evs[i];
            }
        }
    }
    for (;;) {
        void *ev;
        unsigned spins = 0;
        while (!o->deq(q, &ev))
            backoff(&spins);
        if (ev == STOP)
            return sum;
        sum += (uintptr_t)ev;
    }
}

#define DEFINE_THREADS(name, ops_var)                                                   \
    static void *name##_producer(void *arg)                                            \
    {                                                                                  \
        struct worker *w = arg;                                                        \
        pin_to(w->cpu);                                                                \
        start_line(w->run);                                                            \
        produce(&ops_var, w->run, w->base);                                            \
        return NULL;                                                                   \
    }                                                                                  \
    static void *name##_consumer(void *arg)                                            \
    {                                                                                  \
        struct worker *w = arg;                                                        \
        pin_to(w->cpu);                                                                \
        start_line(w->run);                                                            \
        return (void *)(uintptr_t)consume(&ops_var, w->run);                           \
    }                                                                                  \
    static uint64_t name##_pairs(void *q, uint64_t items)                              \
    {                                                                                  \
        uint64_t sum = 0;                                                              \
        for (uint64_t i = 1; i <= items; i++) {                                        \
            void *ev;                                                                  \
            if (!ops_var.enq(q, (void *)(uintptr_t)i) || !ops_var.deq(q, &ev))         \
                return 0;                                                              \
            sum += (uintptr_t)ev;                                                      \
        }                                                                              \
        return sum;                                                                    \
    }

DEFINE_THREADS(seda, seda_ops)
DEFINE_THREADS(ck, ck_ops)
DEFINE_THREADS(mutex, mutex_ops)

typedef void *(*thread_fn)(void *);

static int run_threads(struct run *r, int producers, int consumers, thread_fn pf, thread_fn cf,
                       double *seconds, uint64_t *sum)
{
    pthread_t pt[8], ct[8];
    struct worker pw[8], cw[8];
    r->threads = producers + consumers;
    for (int i = 0; i < consumers; i++) {
        /* 1P1C: producer on CPU 0, consumer on CPU 1. 2P2C: one of each per CPU. */
        cw[i] = (struct worker){ .run = r, .cpu = (i + 1) % 2 };
        if (pthread_create(&ct[i], NULL, cf, &cw[i]) != 0)
            return -EAGAIN;
    }
    for (int i = 0; i < producers; i++) {
        pw[i] = (struct worker){ .run = r, .cpu = i % 2, .base = (uint64_t)i * r->per_producer };
        if (pthread_create(&pt[i], NULL, pf, &pw[i]) != 0)
            return -EAGAIN;
    }
    while (atomic_load(&r->ready) < r->threads)
        sched_yield();
    int64_t t0 = now_ns();
    atomic_store_explicit(&r->go, 1, memory_order_release);
    for (int i = 0; i < producers; i++)
        pthread_join(pt[i], NULL);
    /* Every event is in the queue or consumed: one STOP per consumer, after
     * them in FIFO order, ends the consumers. */
    for (int i = 0; i < consumers; i++) {
        unsigned spins = 0;
        while (!r->ops->enq(r->q, STOP))
            backoff(&spins);
    }
    *sum = 0;
    for (int i = 0; i < consumers; i++) {
        void *part;
        pthread_join(ct[i], &part);
        *sum += (uint64_t)(uintptr_t)part;
    }
    *seconds = (double)(now_ns() - t0) / 1e9;
    return 0;
}

int seda_bench_queue_run(int queue, int scenario, uint64_t items, size_t capacity, double *mops)
{
    const struct ops *o;
    thread_fn pf, cf;
    uint64_t (*pairs)(void *, uint64_t);
    switch (queue) {
    case SEDA_BENCH_QUEUE_SEDA: o = &seda_ops; pf = seda_producer; cf = seda_consumer; pairs = seda_pairs; break;
    case SEDA_BENCH_QUEUE_CK: o = &ck_ops; pf = ck_producer; cf = ck_consumer; pairs = ck_pairs; break;
    case SEDA_BENCH_QUEUE_MUTEX: o = &mutex_ops; pf = mutex_producer; cf = mutex_consumer; pairs = mutex_pairs; break;
    default: return -EINVAL;
    }
    if (capacity < 2 || (capacity & (capacity - 1)) || items == 0)
        return -EINVAL;
    struct run r = { .ops = o, .q = o->create(capacity) };
    if (!r.q)
        return -ENOMEM;
    double seconds = 0;
    uint64_t sum = 0;
    int rc = 0;
    switch (scenario) {
    case SEDA_BENCH_PAIRS: {
        cpu_set_t saved;
        pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
        pin_to(0);
        int64_t t0 = now_ns();
        sum = pairs(r.q, items);
        seconds = (double)(now_ns() - t0) / 1e9;
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
        break;
    }
    case SEDA_BENCH_1P1C:
    case SEDA_BENCH_1P1C_BATCH32:
        r.per_producer = items;
        r.batch = scenario == SEDA_BENCH_1P1C_BATCH32;
        rc = run_threads(&r, 1, 1, pf, cf, &seconds, &sum);
        break;
    case SEDA_BENCH_2P2C:
        r.per_producer = items / 2;
        items = r.per_producer * 2;
        rc = run_threads(&r, 2, 2, pf, cf, &seconds, &sum);
        break;
    default:
        rc = -EINVAL;
    }
    o->destroy(r.q);
    /* Every event arrived exactly once (the sum of 1..items), or the figure is void. */
    if (rc == 0 && sum != items * (items + 1) / 2)
        rc = -EIO;
    if (rc == 0)
        *mops = (double)items / seconds / 1e6;
    return rc;
}
