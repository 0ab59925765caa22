/*
 * Private to the C core: seda__ names shared across its files. Never include
 * this from include/ or from outside Sources/CSedaCore.
 */
#ifndef SEDA_INTERNAL_H
#define SEDA_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "seda/notifier.h"

/* Destructive interference size on every x86-64 and arm64 part we target. */
#define SEDA__CACHELINE 64

#define SEDA__LIKELY(x) __builtin_expect(!!(x), 1)
#define SEDA__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Tell the core that this thread is spinning (PAUSE / YIELD). */
static inline void seda__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t seda__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* a + b, saturated at INT64_MAX / INT64_MIN instead of overflowing: every
 * "now + a caller's interval" in the core goes through here, so that "a very
 * long time" never becomes the past. */
static inline int64_t seda__add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* The clock for statistics: seda_clock_now, read through the TSC where the
 * kernel keeps time with it (clock.c says why and how). */
struct seda_clock;
int64_t seda__clock_now_fast(const struct seda_clock *c);

struct seda_notifier {
    /* Bumped by every slow-path wake; the futex word a parked thread sleeps on. */
    _Atomic uint32_t epoch;
    /* Threads between prepare and park/cancel. Read by every producer on every
     * publication, written only by threads about to sleep: it stays in the
     * producers' caches as long as nobody parks. */
    _Atomic uint32_t waiters;
    _Atomic uint64_t wake_syscalls;
    int efd; /* -1 for a futex notifier */
};

/* Initialises an embedded futex notifier (no eventfd; nothing to free). */
void seda__notifier_init(seda_notifier_t *n);


/* Allocates `size` bytes aligned to a cache line, zeroed; NULL on failure. */
void *seda__alloc_aligned(size_t size);

/* Logs through the runtime's log hook (seda_runtime_options.log), or with
 * rt NULL or no hook, warnings and errors to stderr. printf-style; the
 * message is cut at 512 bytes. Any thread (log.c). */
struct seda_runtime;
void seda__log(const struct seda_runtime *rt, int level, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* pthread_create with default attributes, returning Seda's code for a thread
 * that cannot be started: -ENOMEM for pthread's EAGAIN ("no resources", not
 * Seda's "full, try again"), the negated error otherwise (thread.c). */
#include <pthread.h>
int seda__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* ---- what the I/O layers ask of the runtime (runtime.c, shutdown.c) ---- */
struct seda_stage;

/* A shared thread's index for the next I/O component (a file stage) to
 * bind to when told none: round robin over rt's shared threads. Any thread. */
uint32_t seda__runtime_spread_thread(struct seda_runtime *rt);

/* Counts one unit of work s's owner holds outside s's queue (a file
 * stage's request, from acceptance to delivery), until the matching
 * seda__stage_unhold: a DRAIN shutdown waits for it ("Quiescence" in
 * runtime_internal.h). Hold before the work can finish; unhold after what
 * it led to is enqueued. Any thread. */
void seda__stage_hold(struct seda_stage *s);
void seda__stage_unhold(struct seda_stage *s);

/* ---- statistics (stats.c) ---------------------------------------------- */
#include <stdatomic.h>
#include <stdbool.h>

#include "seda/stats.h"

typedef struct seda__histogram {
    _Atomic uint64_t count, sum, max;
    _Atomic uint64_t buckets[SEDA_HISTOGRAM_BUCKETS];
} seda__histogram_t;

/* Records `n` samples of value v. exclusive: the caller is the only writer
 * right now (a stage with concurrency 1), so plain load+store suffices. */
void seda__histogram_add(seda__histogram_t *h, uint64_t v, uint64_t n, bool exclusive);
void seda__histogram_snapshot(const seda__histogram_t *h, seda_histogram_snapshot_t *out);
#endif /* SEDA_INTERNAL_H */
