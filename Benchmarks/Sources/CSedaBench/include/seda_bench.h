/*
 * Benchmark kernels for seda-bench, in C so that every queue is driven by the
 * same compiled loops. Not part of the library's API.
 */
#ifndef SEDA_BENCH_H
#define SEDA_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The queues measured side by side. */
enum seda_bench_queue {
    SEDA_BENCH_QUEUE_SEDA = 0,  /* seda_queue_t (MPMC) */
    SEDA_BENCH_QUEUE_CK = 1,    /* concurrencykit ck_ring, MPMC entry points */
    SEDA_BENCH_QUEUE_MUTEX = 2, /* a ring under a pthread mutex with condition variables */
};

/* What is measured. */
enum seda_bench_scenario {
    SEDA_BENCH_PAIRS = 0,        /* one thread: enqueue one, dequeue one */
    SEDA_BENCH_1P1C = 1,         /* producer and consumer pinned to different CPUs */
    SEDA_BENCH_1P1C_BATCH32 = 2, /* the same, batches of 32 on both sides */
    SEDA_BENCH_2P2C = 3,         /* 2 producers, 2 consumers on 2 CPUs */
};

/*
 * Runs one measurement: `items` events through a queue of `capacity`.
 * Stores events per second (millions) in *mops. Returns 0, or a negative
 * errno (-EINVAL for an unknown queue or scenario, or a thread error).
 * Every queue waits the same way when full or empty: 64 PAUSEs, then
 * sched_yield between attempts.
 */
int seda_bench_queue_run(int queue, int scenario, uint64_t items, size_t capacity, double *mops);

/* CPUs this process may run on. */
int seda_bench_cpus(void);

/* Timer costs in nanoseconds per operation (see seda_bench_timer_ops). */
typedef struct seda_bench_timer_result {
    double fill_ns;            /* one add, while filling to `pending` */
    double add_cancel_ns;      /* one pair: add a timer, cancel a random pending one */
    double fire_ns;            /* one timer fired by poll, which re-arms one (an add) */
    double heap_add_cancel_ns; /* the anchor: the same pair on a binary heap + mutex */
    double heap_fire_ns;       /* the anchor: pop one due, push one */
} seda_bench_timer_result_t;

/*
 * Timers on a manual clock (no thread, no sleep): fills a seda_timers_t with
 * `pending` timers at random deadlines within an hour, times `ops` pairs of
 * add + cancel of a random pending timer, then fires at least `ops` timers
 * (clock steps of about 32 expiries, each fired timer re-arming one, so the
 * population stays at `pending`). Then the same workload on an indexed binary
 * heap under a mutex, the anchor. Returns 0; -EINVAL (NULL out, pending or
 * ops 0, pending above 2^32 - 1); -ENOMEM.
 */
int seda_bench_timer_ops(uint64_t pending, uint64_t ops, seda_bench_timer_result_t *out);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_BENCH_H */
