/*
 * Benchmark kernels for seda-bench, in C so that every queue is driven by the
 * same compiled loops. Not part of the library's API.
 */
#ifndef SEDA_BENCH_H
#define SEDA_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <seda/seda.h>

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

/* ---- disk (seda-bench disk) ---------------------------------------------- */

/* The disk workloads, all O_DIRECT. */
enum seda_bench_disk_workload {
    SEDA_BENCH_DISK_RANDREAD_4K = 0,  /* 4 KiB reads at random block offsets of the data file */
    SEDA_BENCH_DISK_SEQREAD_128K = 1, /* 128 KiB reads, one after the other, wrapping at its end */
    SEDA_BENCH_DISK_RANDWRITE_4K = 2, /* 4 KiB writes to distinct random blocks of "<path>.write",
                                       * then fdatasync, then every block read back and compared */
};

typedef struct seda_bench_disk_config {
    const char *path;        /* the data file (see seda_bench_disk_prepare) */
    uint64_t file_bytes;     /* its size (a multiple of 128 KiB) */
    int workload;            /* enum seda_bench_disk_workload */
    uint32_t queue_depth;    /* requests in flight (threads: pool threads / fio psync jobs) */
    double seconds;          /* how long each run lasts */
    int engine;              /* enum seda_disk_engine: Seda's engine, and fio's matching ioengine */
    int register_buffers;    /* io_uring: 1 registered buffers (fio: fixedbufs), -1 not, 0 the stage's default */
    uint32_t cpu_threads;    /* Seda's shared threads (0: one per CPU) */
    uint64_t seed;           /* random offsets and written contents */
} seda_bench_disk_config_t;

typedef struct seda_bench_disk_result {
    double iops, mb_per_s;
    double p50_us, p99_us;   /* latency: request accepted -> completion in the client's handler
                              * (fio: its total latency, lat_percentiles) */
    uint64_t ops;
    uint64_t submit_calls;   /* Seda: io_uring_enter / io_submit calls made */
    uint64_t reap_calls;     /* Seda: times the home worker reaped completions (woken by the eventfd) */
    int verified;            /* reads: every block header matched; writes: every written
                              * block read back equal after fdatasync */
    uint64_t verified_blocks; /* writes: how many blocks were compared */
} seda_bench_disk_result_t;

/*
 * Makes sure `path` holds `bytes` of headed blocks (each 4 KiB block starts
 * with its own index), writing it only if it does not already (sets
 * *created), and that "<path>.write" (256 MiB, or the largest power of two
 * of bytes not above `bytes`) exists, preallocated.
 * Returns 0 or a negative errno.
 */
int seda_bench_disk_prepare(const char *path, uint64_t bytes, int *created);

/* One run of the workload through a Seda file stage. Returns 0; -ENOTSUP if
 * the engine is not available here; another negative errno on failure. */
int seda_bench_disk_seda(const seda_bench_disk_config_t *cfg, seda_bench_disk_result_t *out);

/* The matching fio job (the `fio` executable, looked up in PATH). Returns 0,
 * -EPROTO if fio failed or its output could not be read, or a spawn error. */
int seda_bench_disk_fio(const seda_bench_disk_config_t *cfg, const char *fio, seda_bench_disk_result_t *out);

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

/* ---- seda-bench echo / asocket: Seda servers on the C API (server_bench.c) -- */

typedef struct seda_bench_server seda_bench_server_t;

enum seda_bench_server_app {
    SEDA_BENCH_SERVER_ECHO = 0,    /* every packet written back, zero copy */
    SEDA_BENCH_SERVER_ASOCKET = 1, /* ack_size bytes per packet_size bytes received */
};

typedef struct seda_bench_server_options {
    int app;                 /* enum seda_bench_server_app */
    int poller;              /* enum seda_poller_backend */
    uint32_t threads;        /* shared threads; 0: one per CPU */
    uint16_t port;           /* 0: an ephemeral one */
    int accept_mode;         /* enum seda_accept_mode */
    int64_t idle_timeout_ns; /* per connection; 0: none */
    uint32_t packet_size, ack_size; /* asocket */
} seda_bench_server_options_t;

/* Starts a server on 127.0.0.1: a runtime, one bound stage per shared
 * thread, a listener. Returns 0 or a negative errno. */
int seda_bench_server_start(const seda_bench_server_options_t *o, seda_bench_server_t **out);
uint16_t seda_bench_server_port(const seda_bench_server_t *s);
const char *seda_bench_server_describe(const seda_bench_server_t *s);
/* The socket layer's counters summed over the threads. */
void seda_bench_server_stats(const seda_bench_server_t *s, seda_io_stats_t *total);
/* Stops the server (closes every connection) and frees it. NULL is ignored. */
void seda_bench_server_stop(seda_bench_server_t *s);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_BENCH_H */
