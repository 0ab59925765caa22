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


/* ---- seda-bench poll: one active connection, N idle ones (poll_bench.c) -- */

typedef struct seda_bench_poll seda_bench_poll_t;

typedef struct seda_bench_poll_result {
    uint64_t events;     /* events delivered and timed */
    double ns_per_event; /* write + wait + read, per event */
    double events_per_s;
    int max_fd;          /* the highest descriptor the poller watched */
} seda_bench_poll_result_t;

/*
 * Most idle connections seda_bench_poll_open can make here: the hard
 * RLIMIT_NOFILE less a margin (the soft limit is raised to the hard one).
 */
uint32_t seda_bench_poll_capacity(void);

/*
 * Makes one active TCP connection on 127.0.0.1 (both ends here) and `idle`
 * idle ones whose client ends a child process holds. Returns 0; -EMFILE
 * when idle exceeds seda_bench_poll_capacity(); -ETIMEDOUT when connecting
 * stalls for 10 s; or the failing call's error. Free with
 * seda_bench_poll_close (which also ends the child).
 */
int seda_bench_poll_open(seda_bench_poll_t **out, uint32_t idle);
void seda_bench_poll_close(seda_bench_poll_t *b);

/* Idle connections made by open. */
uint32_t seda_bench_poll_idle(const seda_bench_poll_t *b);

/*
 * One measurement: a seda_poller of `backend` (enum seda_poller_backend)
 * watching the active connection and the first n idle ones; then events
 * (write a byte, wait for the poller to report it, read it) until
 * max_events or max_ns. Returns 0; -EINVAL (n above the idle count); -EMFILE
 * from the select backend when a descriptor is >= FD_SETSIZE; or a poller or
 * socket error. Single-threaded: the calling thread owns the poller.
 */
int seda_bench_poll_run(seda_bench_poll_t *b, int backend, uint32_t n, uint64_t max_events,
                        int64_t max_ns, seda_bench_poll_result_t *r);

/* FD_SETSIZE, for the report (Swift cannot import the macro). */
int seda_bench_poll_fd_setsize(void);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_BENCH_H */
