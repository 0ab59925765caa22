/*
 * The runtime, its stages and their thread managers (include/seda/runtime.h).
 *
 * Scheduling on the shared thread manager. A stage's `active` counts its
 * instances that are on the run queue or running (at most its concurrency).
 * A producer, after its enqueue (a seq_cst RMW on the stage queue's tail),
 * loads `active` (seq_cst); if it is 0 it CASes it to 1 and pushes the stage.
 * A worker ending a turn with the queue empty decrements `active` (seq_cst
 * RMW) and then reads the queue's size (seq_cst). By the total order of
 * seq_cst operations either the producer sees active == 0 and schedules, or
 * the worker sees the event and reschedules: an event is never stranded in
 * an idle stage. This is the notifier's store-load race again, one level up.
 *
 * Quiescence (shutdown with DRAIN). Each stage's accepted count (its queue's
 * tail) and its processed + handed-back counts only grow; a handler bumps
 * `processed` (release) only after it returns, that is after every enqueue it
 * made. The graph is quiescent when, for every stage, processed + handed back
 * == accepted, and two such collections in a row read the same numbers:
 * any event moving between the two (in a cycle too) changes a counter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "seda/queue.h"
#include "seda/runtime.h"

#define NAME_MAX_LEN 63
#define BATCH_LIMIT 1024
#define INLINE_EDGES 8

enum { RT_RUNNING = 0, RT_DRAINING = 1, RT_STOPPING = 2, RT_STOPPED = 3 };

struct pool_thread {
    struct pool_thread *next;
    struct seda_stage *stage;
    pthread_t tid;
    _Atomic bool exited;
};

struct seda_stage {
    /* Read-only after create. */
    seda_runtime_t *rt;
    /* One queue per priority class, queues[0] first; a single queue unless
     * the stage was created with classes > 1. The queues share `notifier`,
     * where a dedicated pool parks. */
    seda_queue_t *queues[SEDA_STAGE_MAX_CLASSES];
    uint32_t classes;
    seda_notifier_t *notifier;
    seda_handler_fn handler;
    void *ctx;
    void (*drop)(void *ctx, void *event);
    void (*destroy_ctx)(void *ctx);
    /* Read at every dequeue, written by a batching controller now and then:
     * relaxed, since any value in range is a valid batch size. */
    _Atomic uint32_t batch_max;
    uint32_t concurrency; /* shared: runs at once; dedicated: max threads */
    int manager;
    int pin_cpu;
    char name[NAME_MAX_LEN + 1];
    struct seda_stage *next; /* runtime's list, under rt->lock */
    _Atomic bool destroyed;

    /* Producers read this on every enqueue; workers write it per turn. */
    alignas(SEDA__CACHELINE) _Atomic uint32_t active;

    /* Overload discipline (SEDA_DISCIPLINE_CODEL): CoDel's state, per stage. */
    int discipline;
    int64_t codel_target, codel_interval;
    pthread_mutex_t codel_lock; /* one batch at a time; uncontended unless concurrency > 1 */
    int64_t codel_first_above, codel_drop_next;
    uint32_t codel_count, codel_last_count;
    bool codel_dropping;

    /* Written by the threads running the handler. */
    alignas(SEDA__CACHELINE) _Atomic uint64_t processed;
    _Atomic uint64_t batches, handler_errors, handler_ns, queue_peak, handed_back, dropped, pauses;
    seda__histogram_t queue_delay, service_time;

    /* Written by producers, rarely. */
    alignas(SEDA__CACHELINE) _Atomic uint64_t rejected_full, rejected_closed;
    /* Clogged: an enqueue found the queue full, and it has not drained to a
     * quarter since. Transitions go to the state callback, once each. */
    _Atomic bool clogged;
    /* Backpressure by scheduling (shared threads): with pause_when_clogged,
     * a stage whose handler found a downstream stage full is not scheduled
     * again until that stage drains. Its instance waits in the downstream
     * stage's `paused` list; both fields under rt->park_lock. */
    bool pause_when_clogged;
    struct seda_stage *parked_on;
    struct seda_stage **paused;
    size_t n_paused, cap_paused;
    seda_stage_state_fn on_state;
    void *state_ctx;
    _Atomic uint32_t refs;

    /* The stage graph: the ids of the stages this stage's handler has sent
     * events to. Ids, not references: a cyclic graph would otherwise keep
     * itself alive. 0 marks a free slot. */
    uint64_t id;
    _Atomic uint64_t edges[INLINE_EDGES];
    pthread_mutex_t edge_lock;
    uint64_t *more_edges;
    size_t n_more, cap_more;

    /* Dedicated pool. */
    pthread_mutex_t pool_lock;
    struct pool_thread *threads;
    _Atomic uint32_t target_threads, live_threads;
};

struct seda_runtime {
    const seda_clock_t *clock;
    seda_queue_t *run_queue;
    uint32_t cpu_threads;
    pthread_t *cpu;
    bool pin;
    alignas(SEDA__CACHELINE) _Atomic int state;

    /* The owner's reference plus one per stage still in memory: a stage
     * handle may outlive seda_runtime_destroy, and its enqueues read here. */
    _Atomic uint32_t refs;
    pthread_mutex_t lock; /* the stage list and the run queue budget */
    /* Parking stages upstream of clogged ones: rare, so one lock for the
     * whole runtime, which also makes the cycle check race-free. */
    pthread_mutex_t park_lock;
    struct seda_stage *stages, *last;
    uint64_t concurrency_sum;
    uint32_t run_queue_capacity;
    uint64_t last_id;
};

/* ---- the stage's queues, one per priority class -------------------------------- */

/* Takes up to max events from the highest class that has any. Returns a
 * count, -EAGAIN when every class is empty (or momentarily unpublished), or
 * -EPIPE when every class is closed and drained. */
static int stage_dequeue(seda_stage_t *s, void **buf, uint32_t *stamps, size_t max)
{
    int r = seda_queue_dequeue_many(s->queues[0], buf, stamps, max);
    if (SEDA__LIKELY(s->classes == 1 || r > 0))
        return r;
    bool all_closed = r == -EPIPE;
    for (uint32_t c = 1; c < s->classes; c++) {
        int k = seda_queue_dequeue_many(s->queues[c], buf, stamps, max);
        if (k > 0)
            return k;
        all_closed = all_closed && k == -EPIPE;
    }
    return all_closed ? -EPIPE : -EAGAIN;
}

/* Events waiting in every class (seq_cst loads; see seda_queue_size). */
static size_t stage_size(const seda_stage_t *s)
{
    size_t n = 0;
    for (uint32_t c = 0; c < s->classes; c++)
        n += seda_queue_size(s->queues[c]);
    return n;
}

static uint64_t stage_accepted(const seda_stage_t *s)
{
    uint64_t n = 0;
    for (uint32_t c = 0; c < s->classes; c++)
        n += seda_queue_accepted(s->queues[c]);
    return n;
}

static void stage_close(seda_stage_t *s)
{
    for (uint32_t c = 0; c < s->classes; c++)
        seda_queue_close(s->queues[c]);
}

static bool stage_is_closed(const seda_stage_t *s)
{
    return seda_queue_is_closed(s->queues[0]);
}

static void stage_free_queues(seda_stage_t *s)
{
    for (uint32_t c = 0; c < s->classes; c++)
        seda_queue_destroy(s->queues[c], NULL, NULL);
    seda_notifier_destroy(s->notifier);
}

/* Which runtime owns this thread, which stage's handler it is running, and
 * that batch's start time: an enqueue from a handler reads these instead of
 * the clock. */
static _Thread_local seda_runtime_t *tls_runtime;
static _Thread_local seda_stage_t *tls_stage;
static _Thread_local uint32_t tls_batch_us;
/* A shared-pool thread's "run next" slot: a stage its own handler just fed
 * runs on this thread, right after the current turn, while the events are
 * still in its cache (DESIGN: "the thread already holding the data"). The
 * slot's stage holds an instance's reference, like a run queue entry. */
static _Thread_local bool tls_cpu_thread;
static _Thread_local seda_stage_t *tls_next;
/* When this thread's last batch ended (0: stale, e.g. after waiting): the
 * next batch's start time, saving a clock read (~25 ns here) per batch. */
static _Thread_local int64_t tls_last_end;
/* Set by an enqueue that found a stage full, from a handler whose stage
 * pauses when clogged: the stage it should wait for (a reference). */
static _Thread_local seda_stage_t *tls_blocked_by;

/* Events a shared-pool thread handles in one turn of a stage before it moves
 * on: several batches, so that a busy stage costs one scheduling round trip
 * per turn rather than per batch, yet others still get their turn. */
#define TURN_EVENTS_MIN 64
#define TURN_BATCHES_MAX 16
/* Consecutive "run next" turns before the slot goes to the run queue, so a
 * chain of stages cannot keep one thread to itself. */
#define NEXT_RUNS_MAX 8
/* Empty polls of the run queue before a shared thread parks (~20-50 us of
 * PAUSEs): a wake-up costs more than that. */
#define IDLE_SPINS 512

/* Stamps: the enqueue time in microseconds, 31 bits (wrapping every 35
 * minutes), and bit 31 set for a control event, which no queue discipline
 * may drop. */
#define STAMP_CONTROL (UINT32_C(1) << 31)
#define STAMP_TIME (STAMP_CONTROL - 1)

static inline uint32_t us_stamp(int64_t ns)
{
    return (uint32_t)(ns / 1000) & STAMP_TIME;
}

static inline uint32_t now_us(const seda_runtime_t *rt)
{
    return us_stamp(seda__clock_now_fast(rt->clock));
}

static void name_thread(pthread_t t, const char *name)
{
    char buf[16]; /* the kernel's limit: 15 bytes + NUL */
    size_t n = strlen(name);
    if (n > sizeof buf - 1)
        n = sizeof buf - 1;
    memcpy(buf, name, n);
    buf[n] = '\0';
    pthread_setname_np(t, buf);
}

static void pin_thread(pthread_t t, int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpu < 0 || n <= 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % n, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}

/* ---- reference counting --------------------------------------------------- */

static void runtime_release(seda_runtime_t *rt)
{
    if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(rt->cpu);
    seda_queue_destroy(rt->run_queue, NULL, NULL);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->park_lock);
    free(rt);
}

static void stage_free(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    free(s->more_edges);
    free(s->paused);
    /* Destroy or shutdown handed everything back, and the destroy callback
     * may have freed ctx: the queue is empty and gets no drop callback. */
    stage_free_queues(s);
    pthread_mutex_destroy(&s->edge_lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->codel_lock);
    free(s);
    runtime_release(rt);
}

void seda_stage_retain(seda_stage_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void seda_stage_release(seda_stage_t *s)
{
    if (!s)
        return;
    /* acq_rel: every use of the stage by this thread happens before the free
     * by whichever thread drops the last reference. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        stage_free(s);
}

const char *seda_stage_name(const seda_stage_t *s)
{
    return s->name;
}

/* ---- running a batch ---------------------------------------------------------- */

static inline void bump(_Atomic uint64_t *c, uint64_t by, bool exclusive, memory_order mo)
{
    if (exclusive)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by, mo);
    else
        atomic_fetch_add_explicit(c, by, mo);
}

static void push_stage(seda_stage_t *s, bool take_ref);

/* Removes x from the list of the stage it is parked on. park_lock held. */
static void unlink_parked(seda_stage_t *x)
{
    seda_stage_t *down = x->parked_on;
    for (size_t i = 0; i < down->n_paused; i++) {
        if (down->paused[i] == x) {
            down->paused[i] = down->paused[--down->n_paused];
            break;
        }
    }
    x->parked_on = NULL;
}

/* Reschedules every stage parked on `down` (it drained, or is going away). */
static void unpark_upstream(seda_stage_t *down)
{
    seda_runtime_t *rt = down->rt;
    pthread_mutex_lock(&rt->park_lock);
    seda_stage_t **list = down->paused;
    size_t n = down->n_paused;
    down->paused = NULL;
    down->n_paused = down->cap_paused = 0;
    for (size_t i = 0; i < n; i++)
        list[i]->parked_on = NULL;
    pthread_mutex_unlock(&rt->park_lock);
    for (size_t i = 0; i < n; i++)
        push_stage(list[i], false); /* the parked instance and its reference */
    free(list);
}

/* Takes s out of the list it is parked in, if any, and reschedules it. */
static void unpark_self(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    bool found = false;
    pthread_mutex_lock(&rt->park_lock);
    if (s->parked_on) {
        unlink_parked(s);
        found = true;
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (found)
        push_stage(s, false);
}

/*
 * Parks this turn's instance of `up` on `down` instead of rescheduling it,
 * if `down` is still clogged. Returns whether it parked.
 *
 * Cycles. If `down` waits (directly or through a chain of parked stages)
 * for `up`, parking would leave every stage of the cycle waiting for
 * another to drain, for ever; and merely not parking is no better: `down`
 * would still wait for `up`, which cannot drain into `down`. So the stages
 * of the chain are rescheduled instead, and the cycle runs: its handlers
 * meet full queues and apply their own overload policy (keep, shed).
 */
static bool park_upstream(seda_stage_t *up, seda_stage_t *down)
{
    seda_runtime_t *rt = up->rt;
    if (down == up)
        return false;
    enum { CHAIN_MAX = 64 };
    seda_stage_t *chain[CHAIN_MAX];
    size_t n_chain = 0;
    bool parked = false, cycle = false;
    pthread_mutex_lock(&rt->park_lock);
    for (seda_stage_t *x = down; x && n_chain < CHAIN_MAX; x = x->parked_on) {
        if (x == up) {
            cycle = true;
            break;
        }
        if (x->parked_on)
            chain[n_chain++] = x;
    }
    if (cycle) {
        for (size_t i = 0; i < n_chain; i++)
            unlink_parked(chain[i]);
    } else if (atomic_load(&down->clogged) && !atomic_load(&down->destroyed) &&
               atomic_load(&rt->state) < RT_STOPPING) {
        if (down->n_paused == down->cap_paused) {
            size_t cap = down->cap_paused ? 2 * down->cap_paused : 4;
            seda_stage_t **m = realloc(down->paused, cap * sizeof *m);
            if (m) {
                down->paused = m;
                down->cap_paused = cap;
            }
        }
        if (down->n_paused < down->cap_paused) {
            down->paused[down->n_paused++] = up;
            up->parked_on = down;
            parked = true;
            atomic_fetch_add_explicit(&up->pauses, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (cycle)
        for (size_t i = 0; i < n_chain; i++)
            push_stage(chain[i], false); /* their parked instances run again */
    return parked;
}

static void set_clogged(seda_stage_t *s, bool clogged)
{
    bool was = !clogged;
    /* One thread wins each transition and reports it. */
    if (!atomic_compare_exchange_strong(&s->clogged, &was, clogged))
        return;
    if (s->on_state)
        s->on_state(s->state_ctx, s, clogged ? SEDA_STAGE_CLOGGED : SEDA_STAGE_DRAINED);
    if (!clogged)
        unpark_upstream(s); /* after the flag: a parker re-checks it under the lock */
}

/* After a turn: a clogged stage whose queue fell to a quarter has drained. */
static inline void check_drained(seda_stage_t *s)
{
    if (SEDA__UNLIKELY(atomic_load_explicit(&s->clogged, memory_order_relaxed)) &&
        stage_size(s) <= seda_queue_capacity(s->queues[0]) / 4)
        set_clogged(s, false);
}

static uint64_t isqrt(uint64_t x)
{
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > x)
        bit >>= 2;
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

/* CoDel's control law: the next drop comes interval/sqrt(count) later. */
static int64_t codel_next(const seda_stage_t *s, int64_t t, uint32_t count)
{
    return t + (int64_t)((uint64_t)s->codel_interval / isqrt(count ? count : 1));
}

/*
 * CoDel (Nichols & Jacobson; RFC 8289) on a dequeued batch: once events have
 * waited longer than `target` for a whole `interval`, drop one, then drop
 * more often (interval / sqrt(count)) until the sojourn time falls below
 * target. Latency stays bounded under overload while a burst that drains
 * within the interval loses nothing. Dropped events go to the drop callback
 * and are counted; control events are never dropped. Returns how many
 * events remain, compacted in order.
 */
static size_t codel_filter(seda_stage_t *s, void **events, uint32_t *stamps, size_t k, int64_t now)
{
    uint32_t now_stamp = us_stamp(now);
    size_t kept = 0;
    uint64_t drops = 0;
    pthread_mutex_lock(&s->codel_lock);
    for (size_t i = 0; i < k; i++) {
        bool control = stamps[i] & STAMP_CONTROL;
        int64_t sojourn = (int64_t)((now_stamp - stamps[i]) & STAMP_TIME) * 1000;
        bool ok_to_drop = false;
        if (sojourn < s->codel_target) {
            s->codel_first_above = 0;
        } else if (s->codel_first_above == 0) {
            s->codel_first_above = now + s->codel_interval;
        } else if (now >= s->codel_first_above) {
            ok_to_drop = true;
        }
        bool drop = false;
        if (s->codel_dropping) {
            if (!ok_to_drop) {
                s->codel_dropping = false;
            } else if (now >= s->codel_drop_next) {
                s->codel_count++;
                s->codel_drop_next = codel_next(s, s->codel_drop_next, s->codel_count);
                drop = true;
            }
        } else if (ok_to_drop) {
            /* Resume near the last drop rate if we were dropping recently. */
            uint32_t delta = s->codel_count - s->codel_last_count;
            s->codel_count = delta > 1 && now - s->codel_drop_next < 16 * s->codel_interval ? delta : 1;
            s->codel_last_count = s->codel_count;
            s->codel_drop_next = codel_next(s, now, s->codel_count);
            s->codel_dropping = true;
            drop = true;
        }
        if (drop && !control) {
            s->drop(s->ctx, events[i]);
            drops++;
        } else {
            events[kept] = events[i];
            stamps[kept] = stamps[i];
            kept++;
        }
    }
    pthread_mutex_unlock(&s->codel_lock);
    if (drops)
        /* Release: read by collect() like `processed`. */
        atomic_fetch_add_explicit(&s->dropped, drops, memory_order_release);
    return kept;
}

static void run_batch(seda_stage_t *s, void **events, uint32_t *stamps, size_t k,
                      bool sample_depth)
{
    seda_runtime_t *rt = s->rt;
    bool exclusive = s->concurrency == 1;
    int64_t t0 = tls_last_end ? tls_last_end : seda__clock_now_fast(rt->clock);
    uint32_t start_us = us_stamp(t0);
    if (s->discipline == SEDA_DISCIPLINE_CODEL)
        k = codel_filter(s, events, stamps, k, t0);
    if (k == 0)
        return; /* everything dropped: the handler is not called */

    /* Queueing delay per event; stamps come in runs (one per producer
     * batch), so record each run once. */
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && stamps[j] == stamps[i])
            j++;
        uint64_t delay_us = (start_us - stamps[i]) & STAMP_TIME;
        if (delay_us > STAMP_TIME / 2) /* a stamp from "the future": clock skew between threads */
            delay_us = 0;
        seda__histogram_add(&s->queue_delay, delay_us * 1000, j - i, exclusive);
        i = j;
    }
    /* The queue's depth as this thread found it: exact when the batch was
     * full (a deep queue), otherwise this batch drained it. Reading the size
     * touches the producers' line, so callers sample it once in a while. */
    uint64_t depth = k;
    if (sample_depth) /* the caller's batch was full: a deep queue */
        depth += stage_size(s);
    uint64_t peak = atomic_load_explicit(&s->queue_peak, memory_order_relaxed);
    while (depth > peak && !atomic_compare_exchange_weak_explicit(&s->queue_peak, &peak, depth,
                                                                  memory_order_relaxed,
                                                                  memory_order_relaxed)) {
    }

    seda_stage_t *outer = tls_stage;
    uint32_t outer_us = tls_batch_us;
    tls_stage = s;
    tls_batch_us = start_us;
    int rc = s->handler(s->ctx, events, k);
    tls_stage = outer;
    tls_batch_us = outer_us;

    int64_t t1 = seda__clock_now_fast(rt->clock);
    tls_last_end = t1;
    uint64_t took = t1 > t0 ? (uint64_t)(t1 - t0) : 0;
    seda__histogram_add(&s->service_time, took / k, k, exclusive);
    bump(&s->batches, 1, exclusive, memory_order_relaxed);
    bump(&s->handler_ns, took, exclusive, memory_order_relaxed);
    if (rc < 0)
        atomic_fetch_add_explicit(&s->handler_errors, 1, memory_order_relaxed);
    /* Release, last: pairs with the acquire in collect(); everything the
     * handler enqueued is visible to whoever sees this count. */
    bump(&s->processed, k, exclusive, memory_order_release);
    check_drained(s);
}

/* ---- the shared thread manager ------------------------------------------------- */

/* Puts one instance of s on the run queue; the instance owns a reference. */
static void push_stage(seda_stage_t *s, bool take_ref)
{
    if (take_ref)
        seda_stage_retain(s);
    int r;
    /* Capacity is reserved at stage creation, but a consumer preempted
     * between claiming a slot and freeing it makes the ring look full for a
     * moment: retry. Only a closed run queue (shutdown) gives up. */
    while ((r = seda_queue_enqueue(s->rt->run_queue, s)) == -EAGAIN)
        sched_yield();
    if (r != 0) {
        /* Nobody will run this instance. */
        atomic_fetch_sub_explicit(&s->active, 1, memory_order_seq_cst);
        seda_stage_release(s);
    }
}

static inline void schedule(seda_stage_t *s)
{
    /* seq_cst load after the enqueue's seq_cst RMW; see the file comment. */
    if (atomic_load_explicit(&s->active, memory_order_seq_cst) != 0)
        return;
    uint32_t idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->active, &idle, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    if (tls_cpu_thread && tls_runtime == s->rt) {
        /* Newest in the slot; the one it displaces goes to the run queue. */
        seda_stage_retain(s);
        seda_stage_t *old = tls_next;
        tls_next = s;
        if (old)
            push_stage(old, false);
        return;
    }
    push_stage(s, true);
}

/* One turn of a shared-pool thread on stage s: a few batches at most. */
static void run_turn(seda_stage_t *s, void **buf, uint32_t *stamps)
{
    uint32_t batch_max = atomic_load_explicit(&s->batch_max, memory_order_relaxed);
    uint32_t budget = batch_max * 4 > TURN_EVENTS_MIN ? batch_max * 4 : TURN_EVENTS_MIN;
    uint32_t done = 0;
    bool more = false; /* stopped on the budget: events may remain */
    for (int batches = 0; batches < TURN_BATCHES_MAX; batches++) {
        int k = stage_dequeue(s, buf, stamps, batch_max);
        if (k <= 0)
            break;
        if (batches == 0 && s->concurrency > 1 && (uint32_t)k == batch_max &&
            stage_size(s) > 0) {
            /* More waiting: let another thread take the next batch now. */
            uint32_t a = atomic_load_explicit(&s->active, memory_order_relaxed);
            while (a < s->concurrency) {
                if (atomic_compare_exchange_weak_explicit(&s->active, &a, a + 1,
                                                          memory_order_seq_cst,
                                                          memory_order_relaxed)) {
                    push_stage(s, true);
                    break;
                }
            }
        }
        /* The queue's depth is sampled once per turn, at its first batch. */
        run_batch(s, buf, stamps, (size_t)k, batches == 0 && (uint32_t)k == batch_max);
        done += (uint32_t)k;
        if (done >= budget || batches + 1 == TURN_BATCHES_MAX || tls_blocked_by) {
            more = true;
            break;
        }
    }
    if (tls_blocked_by) {
        /* The handler found a downstream stage full: wait for it to drain
         * instead of taking the next turn (refuse to schedule upstream of a
         * clogged stage). The instance moves to that stage's list. */
        seda_stage_t *down = tls_blocked_by;
        tls_blocked_by = NULL;
        bool parked = park_upstream(s, down);
        seda_stage_release(down);
        if (parked)
            return;
    }
    if (more) {
        /* Round robin: back of the run queue, keeping this reference. If the
         * queue happens to be empty, that turn finds out and idles. */
        push_stage(s, false);
        return;
    }
    /* Empty. seq_cst RMW, then the seq_cst size read; see the file comment. */
    if (atomic_fetch_sub_explicit(&s->active, 1, memory_order_seq_cst) == 1 &&
        stage_size(s) > 0) {
        uint32_t idle = 0;
        if (atomic_compare_exchange_strong_explicit(&s->active, &idle, 1, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            push_stage(s, false);
            return;
        }
    }
    seda_stage_release(s);
}

struct cpu_arg {
    seda_runtime_t *rt;
    uint32_t index;
};

static void *cpu_thread(void *p)
{
    struct cpu_arg arg = *(struct cpu_arg *)p;
    free(p);
    seda_runtime_t *rt = arg.rt;
    tls_runtime = rt;
    tls_cpu_thread = true;
    void **buf = malloc(BATCH_LIMIT * sizeof(void *));
    uint32_t *stamps = malloc(BATCH_LIMIT * sizeof(uint32_t));
    if (!buf || !stamps)
        abort(); /* 12 KB at thread start; nothing sensible to do without it */
    unsigned next_runs = 0;
    for (;;) {
        if (tls_next) {
            seda_stage_t *s = tls_next;
            tls_next = NULL;
            if (++next_runs <= NEXT_RUNS_MAX) {
                run_turn(s, buf, stamps);
                continue;
            }
            push_stage(s, false); /* enough: to the back of the line */
        }
        next_runs = 0;
        tls_last_end = 0; /* between turns: the next batch reads the clock */
        void *item;
        int r = -EAGAIN;
        for (unsigned spin = 0; spin < IDLE_SPINS && r == -EAGAIN; spin++) {
            r = seda_queue_dequeue(rt->run_queue, &item);
            if (r != -EAGAIN)
                break;
            /* Mostly PAUSE; now and then let a thread waiting for this CPU
             * (a producer, on an oversubscribed machine) run instead. */
            if (spin % 64 == 63)
                sched_yield();
            else
                seda__cpu_relax();
        }
        if (r == -EAGAIN)
            r = seda_queue_dequeue_wait(rt->run_queue, &item, NULL, 1, -1);
        if (r == -EPIPE)
            break;
        if (r >= 0)
            run_turn(item, buf, stamps);
    }
    free(buf);
    free(stamps);
    return NULL;
}

/* ---- dedicated pools ------------------------------------------------------------- */

static bool should_exit(seda_stage_t *s)
{
    uint32_t live = atomic_load_explicit(&s->live_threads, memory_order_seq_cst);
    while (live > atomic_load_explicit(&s->target_threads, memory_order_seq_cst)) {
        if (atomic_compare_exchange_weak_explicit(&s->live_threads, &live, live - 1,
                                                  memory_order_seq_cst, memory_order_seq_cst)) {
            /* A grow may have raised the target between our check and the
             * CAS, counting on us: then stay. */
            if (live - 1 < atomic_load_explicit(&s->target_threads, memory_order_seq_cst)) {
                atomic_fetch_add_explicit(&s->live_threads, 1, memory_order_seq_cst);
                return false;
            }
            return true;
        }
    }
    return false;
}

static void *pool_thread(void *p)
{
    struct pool_thread *self = p;
    seda_stage_t *s = self->stage;
    tls_runtime = s->rt;
    /* Room for the largest batch any controller may set. */
    void **buf = malloc(BATCH_LIMIT * sizeof(void *));
    uint32_t *stamps = malloc(BATCH_LIMIT * sizeof(uint32_t));
    if (!buf || !stamps)
        abort();
    seda_notifier_t *n = s->notifier;
    unsigned since_sample = 0;
    for (;;) {
        if (should_exit(s))
            break;
        uint32_t batch_max = atomic_load_explicit(&s->batch_max, memory_order_relaxed);
        int k = stage_dequeue(s, buf, stamps, batch_max);
        if (k > 0) {
            /* Sample the depth on the first batch after a wait and every 16th. */
            run_batch(s, buf, stamps, (size_t)k,
                      since_sample++ % 16 == 0 && (uint32_t)k == batch_max);
            continue;
        }
        since_sample = 0;
        tls_last_end = 0; /* about to wait: the next batch reads the clock */
        if (k == -EPIPE) {
            atomic_fetch_sub_explicit(&s->live_threads, 1, memory_order_acq_rel);
            break;
        }
        /* Empty: park on the queue's notifier, waking for events, for a close,
         * or for a resize (seda_stage_set_threads wakes everyone). */
        uint32_t epoch = seda_notifier_prepare(n);
        if (stage_size(s) != 0 || stage_is_closed(s) ||
            atomic_load(&s->live_threads) > atomic_load(&s->target_threads)) {
            seda_notifier_cancel(n);
            continue;
        }
        seda_notifier_park(n, epoch, -1);
    }
    free(buf);
    free(stamps);
    atomic_store_explicit(&self->exited, true, memory_order_release);
    return NULL;
}

/* Joins pool threads that have exited; all of them when `all`. pool_lock held. */
static void reap_pool(seda_stage_t *s, bool all)
{
    struct pool_thread **pp = &s->threads;
    while (*pp) {
        struct pool_thread *t = *pp;
        if (all || atomic_load_explicit(&t->exited, memory_order_acquire)) {
            pthread_join(t->tid, NULL);
            *pp = t->next;
            free(t);
        } else {
            pp = &t->next;
        }
    }
}

/* Starts one pool thread. pool_lock held. */
static int start_pool_thread(seda_stage_t *s)
{
    struct pool_thread *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->stage = s;
    atomic_fetch_add_explicit(&s->live_threads, 1, memory_order_acq_rel);
    int r = pthread_create(&t->tid, NULL, pool_thread, t);
    if (r != 0) {
        atomic_fetch_sub_explicit(&s->live_threads, 1, memory_order_acq_rel);
        free(t);
        /* pthread's EAGAIN means "no resources": not our "full". */
        return r == EAGAIN ? -ENOMEM : -r;
    }
    name_thread(t->tid, s->name);
    if (s->pin_cpu >= 0)
        pin_thread(t->tid, s->pin_cpu);
    t->next = s->threads;
    s->threads = t;
    return 0;
}

int seda_stage_watch(seda_stage_t *s, seda_stage_state_fn fn, void *ctx)
{
    /* Set once, before traffic: a plain pair of stores published by the
     * caller's later enqueues. */
    if (s->on_state)
        return -EBUSY;
    s->state_ctx = ctx;
    s->on_state = fn;
    return 0;
}

size_t seda_stage_queue_length(const seda_stage_t *s)
{
    return stage_size(s);
}

int seda_stage_is_clogged(const seda_stage_t *s)
{
    return atomic_load_explicit(&((seda_stage_t *)s)->clogged, memory_order_relaxed);
}

int seda_stage_set_batch_max(seda_stage_t *s, uint32_t n)
{
    if (n < 1 || n > BATCH_LIMIT)
        return -EINVAL;
    atomic_store_explicit(&s->batch_max, n, memory_order_relaxed);
    return 0;
}

uint32_t seda_stage_batch_max(const seda_stage_t *s)
{
    return atomic_load_explicit(&((seda_stage_t *)s)->batch_max, memory_order_relaxed);
}

int seda_stage_set_threads(seda_stage_t *s, uint32_t n)
{
    if (s->manager != SEDA_THREADS_DEDICATED)
        return -ENOTSUP;
    if (n < 1 || n > s->concurrency)
        return -EINVAL;
    pthread_mutex_lock(&s->pool_lock);
    if (atomic_load(&s->destroyed)) {
        pthread_mutex_unlock(&s->pool_lock);
        return -EPIPE;
    }
    /* seq_cst: a store-load race with the parking thread's prepare (RMW) and
     * its read of the target, like the notifier's own protocol. */
    atomic_store_explicit(&s->target_threads, n, memory_order_seq_cst);
    reap_pool(s, false);
    int r = 0;
    while (r == 0 && atomic_load(&s->live_threads) < n)
        r = start_pool_thread(s);
    pthread_mutex_unlock(&s->pool_lock);
    /* Surplus threads may be parked: wake them to notice. */
    seda_notifier_wake(s->notifier, INT32_MAX);
    return r;
}

/* ---- enqueue ------------------------------------------------------------------- */

static void note_edge(seda_stage_t *from, seda_stage_t *to)
{
    uint64_t id = to->id;
    for (int i = 0; i < INLINE_EDGES; i++) {
        uint64_t e = atomic_load_explicit(&from->edges[i], memory_order_relaxed);
        if (e == id)
            return;
        if (e == 0) {
            if (atomic_compare_exchange_strong_explicit(&from->edges[i], &e, id,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed) ||
                e == id)
                return;
        }
    }
    /* More targets than the inline slots: rare, under a lock, no cap. */
    pthread_mutex_lock(&from->edge_lock);
    for (size_t i = 0; i < from->n_more; i++) {
        if (from->more_edges[i] == id) {
            pthread_mutex_unlock(&from->edge_lock);
            return;
        }
    }
    if (from->n_more == from->cap_more) {
        size_t cap = from->cap_more ? from->cap_more * 2 : 8;
        uint64_t *m = realloc(from->more_edges, cap * sizeof *m);
        if (!m) { /* the graph misses an edge; the event itself was delivered */
            pthread_mutex_unlock(&from->edge_lock);
            return;
        }
        from->more_edges = m;
        from->cap_more = cap;
    }
    from->more_edges[from->n_more++] = id;
    pthread_mutex_unlock(&from->edge_lock);
}

static inline int admit(seda_stage_t *s)
{
    /* While the runtime stops, only its own threads (handlers draining the
     * graph) may enqueue. */
    if (SEDA__UNLIKELY(atomic_load_explicit(&s->rt->state, memory_order_relaxed) != RT_RUNNING) &&
        tls_runtime != s->rt)
        return -EPIPE;
    return 0;
}

static inline int after_enqueue(seda_stage_t *s, int r)
{
    if (SEDA__UNLIKELY(r < 0)) {
        if (r == -EAGAIN) {
            if (!atomic_load_explicit(&s->clogged, memory_order_relaxed))
                set_clogged(s, true);
            seda_stage_t *from = tls_stage;
            if (from && from != s && from->pause_when_clogged && !tls_blocked_by) {
                seda_stage_retain(s);
                tls_blocked_by = s;
            }
        }
        if (r == -EAGAIN || r == -EPIPE)
            atomic_fetch_add_explicit(r == -EAGAIN ? &s->rejected_full : &s->rejected_closed, 1,
                                      memory_order_relaxed);
        return r;
    }
    seda_stage_t *from = tls_stage;
    if (from && from != s)
        note_edge(from, s);
    if (s->manager == SEDA_THREADS_SHARED)
        schedule(s);
    return r;
}

/* The lowest class: where events without a class go. */
static inline seda_queue_t *default_queue(const seda_stage_t *s)
{
    return s->queues[s->classes - 1];
}

int seda_stage_enqueue(seda_stage_t *s, void *event)
{
    int r = admit(s);
    if (r == 0) {
        uint32_t stamp = tls_stage ? tls_batch_us : now_us(s->rt);
        r = seda_queue_enqueue_at(default_queue(s), event, stamp);
    }
    return after_enqueue(s, r);
}

int seda_stage_enqueue_class(seda_stage_t *s, void *event, uint32_t cls)
{
    if (cls >= s->classes)
        return -EINVAL;
    int r = admit(s);
    if (r == 0) {
        uint32_t stamp = tls_stage ? tls_batch_us : now_us(s->rt);
        r = seda_queue_enqueue_at(s->queues[cls], event, stamp);
    }
    return after_enqueue(s, r);
}

int seda_stage_enqueue_control(seda_stage_t *s, void *event)
{
    int r = admit(s);
    if (r == 0) {
        uint32_t stamp = (tls_stage ? tls_batch_us : now_us(s->rt)) | STAMP_CONTROL;
        r = seda_queue_enqueue_at(s->queues[0], event, stamp); /* the first class */
    }
    return after_enqueue(s, r);
}

int seda_stage_enqueue_wait(seda_stage_t *s, void *event, int64_t timeout_ns)
{
    /* On the shared threads a wait can deadlock the graph: the stage that
     * would make room may need this very thread (always, in a cycle). */
    if (tls_cpu_thread && tls_runtime == s->rt)
        return -EDEADLK;
    int r = admit(s);
    if (r == 0) {
        uint32_t stamp = tls_stage ? tls_batch_us : now_us(s->rt);
        r = seda_queue_enqueue_wait(default_queue(s), event, stamp, timeout_ns);
        if (r == -ETIMEDOUT) {
            atomic_fetch_add_explicit(&s->rejected_full, 1, memory_order_relaxed);
            return r;
        }
    }
    return after_enqueue(s, r);
}

int seda_stage_enqueue_many(seda_stage_t *s, void *const *events, size_t count)
{
    if (count == 0)
        return 0;
    int r = admit(s);
    if (r == 0) {
        uint32_t stamp = tls_stage ? tls_batch_us : now_us(s->rt);
        r = seda_queue_enqueue_many_at(default_queue(s), events, count, stamp);
    }
    return after_enqueue(s, r);
}

/* ---- stage lifetime ---------------------------------------------------------------- */

static void hand_back_all(seda_stage_t *s)
{
    void *ev;
    uint64_t n = 0;
    int r;
    while ((r = stage_dequeue(s, &ev, NULL, 1)) != -EPIPE) {
        if (r == 1) {
            s->drop(s->ctx, ev);
            n++;
        } else {
            sched_yield(); /* a producer is publishing an event it claimed */
        }
    }
    /* Release: like `processed`, read by collect(). */
    atomic_fetch_add_explicit(&s->handed_back, n, memory_order_release);
}

static void sleep_briefly(void)
{
    struct timespec ts = { 0, 200000 }; /* 200 us */
    nanosleep(&ts, NULL);
}

/* Waits until no shared-pool thread runs s (the queue is closed). */
static void wait_idle(seda_stage_t *s, bool drain)
{
    for (;;) {
        int state = atomic_load(&s->rt->state);
        if (!drain || state >= RT_STOPPED)
            hand_back_all(s); /* nobody else will take them */
        if (stage_size(s) == 0 && atomic_load(&s->active) == 0)
            return;
        sleep_briefly();
    }
}

/* Finishes a stage whose `destroyed` flag the caller set. */
static void stage_finish(seda_stage_t *s, int mode)
{
    stage_close(s);
    unpark_upstream(s); /* they run, and find this stage closed */
    unpark_self(s);
    if (mode == SEDA_SHUTDOWN_HAND_BACK)
        hand_back_all(s);
    if (s->manager == SEDA_THREADS_SHARED) {
        wait_idle(s, mode == SEDA_SHUTDOWN_DRAIN);
    } else {
        /* Take the pool's threads, then join them without the lock: one of
         * them may be calling seda_stage_set_threads (which now sees
         * `destroyed` and returns -EPIPE). */
        pthread_mutex_lock(&s->pool_lock);
        struct pool_thread *threads = s->threads;
        s->threads = NULL;
        pthread_mutex_unlock(&s->pool_lock);
        seda_notifier_wake(s->notifier, INT32_MAX);
        while (threads) { /* they drain, see -EPIPE, and exit */
            struct pool_thread *t = threads;
            threads = t->next;
            pthread_join(t->tid, NULL);
            free(t);
        }
    }
    hand_back_all(s);
    if (s->destroy_ctx)
        s->destroy_ctx(s->ctx);
}

static void unregister(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    pthread_mutex_lock(&rt->lock);
    seda_stage_t **pp = &rt->stages, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = s->next;
        if (rt->last == s)
            rt->last = prev;
        if (s->manager == SEDA_THREADS_SHARED)
            rt->concurrency_sum -= s->concurrency;
    }
    pthread_mutex_unlock(&rt->lock);
}

int seda_stage_destroy(seda_stage_t *s, int mode)
{
    if (mode != SEDA_SHUTDOWN_DRAIN && mode != SEDA_SHUTDOWN_HAND_BACK)
        return -EINVAL;
    /* Its own handler would wait for itself; a shared-pool thread would wait
     * for a turn of s that may sit in its own run-next slot, or need the very
     * thread that waits. */
    if (tls_stage == s ||
        (s->manager == SEDA_THREADS_SHARED && tls_cpu_thread && tls_runtime == s->rt))
        return -EDEADLK;
    if (atomic_exchange(&s->destroyed, true))
        return -EPIPE;
    stage_finish(s, mode);
    unregister(s);
    seda_stage_release(s); /* the runtime's reference */
    return 0;
}

int seda_stage_create(seda_runtime_t *rt, const seda_stage_options_t *o, seda_stage_t **out)
{
    if (!rt || !o || !out || !o->name || !o->name[0] || strlen(o->name) > NAME_MAX_LEN ||
        !o->handler || !o->drop || o->batch_max > BATCH_LIMIT ||
        (o->thread_manager != SEDA_THREADS_SHARED && o->thread_manager != SEDA_THREADS_DEDICATED))
        return -EINVAL;
    uint32_t conc = o->concurrency ? o->concurrency : 1;
    uint32_t maxt = o->thread_manager == SEDA_THREADS_DEDICATED
                        ? (o->max_threads ? o->max_threads : conc)
                        : conc;
    if (maxt < conc)
        return -EINVAL;
    if (o->discipline != SEDA_DISCIPLINE_FIFO && o->discipline != SEDA_DISCIPLINE_CODEL)
        return -EINVAL;
    if (o->pause_when_clogged && o->thread_manager != SEDA_THREADS_SHARED)
        return -EINVAL;
    if (o->discipline == SEDA_DISCIPLINE_CODEL && (o->codel_target_ns < 0 || o->codel_interval_ns < 0))
        return -EINVAL;

    uint32_t classes = o->classes ? o->classes : 1;
    if (classes > SEDA_STAGE_MAX_CLASSES)
        return -EINVAL;
    seda_stage_t *s = seda__alloc_aligned(sizeof *s);
    if (!s)
        return -ENOMEM;
    int r = seda_notifier_create(&s->notifier, 0);
    for (uint32_t c = 0; r == 0 && c < classes; c++) {
        r = seda_queue_create(&s->queues[c], o->queue_capacity ? o->queue_capacity : 1024,
                              s->notifier);
        if (r == 0)
            s->classes = c + 1;
    }
    if (r < 0) {
        stage_free_queues(s);
        free(s);
        return r;
    }
    s->rt = rt;
    s->handler = o->handler;
    s->ctx = o->ctx;
    s->drop = o->drop;
    s->destroy_ctx = o->destroy;
    atomic_init(&s->batch_max, o->batch_max ? o->batch_max : 64);
    s->manager = o->thread_manager;
    s->concurrency = o->thread_manager == SEDA_THREADS_DEDICATED ? maxt : conc;
    s->pin_cpu = o->thread_manager == SEDA_THREADS_DEDICATED && o->pin_to_cpu ? o->pin_cpu : -1;
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->pause_when_clogged = o->pause_when_clogged != 0;
    s->discipline = o->discipline;
    s->codel_target = o->codel_target_ns ? o->codel_target_ns : 5000000;
    s->codel_interval = o->codel_interval_ns ? o->codel_interval_ns : 100000000;
    pthread_mutex_init(&s->edge_lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->codel_lock, NULL);
    atomic_init(&s->refs, 2); /* the caller's and the runtime's */

    pthread_mutex_lock(&rt->lock);
    r = 0;
    if (atomic_load(&rt->state) != RT_RUNNING)
        r = -EPIPE;
    for (seda_stage_t *t = rt->stages; r == 0 && t; t = t->next)
        if (strcmp(t->name, s->name) == 0)
            r = -EEXIST;
    if (r == 0 && s->manager == SEDA_THREADS_SHARED) {
        if (rt->concurrency_sum + s->concurrency > rt->run_queue_capacity)
            r = -ENOSPC;
        else
            rt->concurrency_sum += s->concurrency;
    }
    if (r == 0 && s->manager == SEDA_THREADS_DEDICATED) {
        atomic_store(&s->target_threads, conc);
        pthread_mutex_lock(&s->pool_lock);
        for (uint32_t i = 0; r == 0 && i < conc; i++)
            r = start_pool_thread(s);
        if (r < 0) {
            stage_close(s);
            reap_pool(s, true);
        }
        pthread_mutex_unlock(&s->pool_lock);
    }
    if (r == 0) {
        s->id = ++rt->last_id;
        atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
        if (rt->last)
            rt->last->next = s;
        else
            rt->stages = s;
        rt->last = s;
    }
    pthread_mutex_unlock(&rt->lock);
    if (r < 0) {
        stage_free_queues(s); /* empty: nothing was accepted */
        pthread_mutex_destroy(&s->edge_lock);
        pthread_mutex_destroy(&s->pool_lock);
        pthread_mutex_destroy(&s->codel_lock);
        free(s);
        return r;
    }
    *out = s;
    return 0;
}

/* ---- the runtime --------------------------------------------------------------------- */

int seda_runtime_create(seda_runtime_t **out, const seda_runtime_options_t *opts)
{
    seda_runtime_options_t o = { 0 };
    if (opts)
        o = *opts;
    if (!out)
        return -EINVAL;
    uint32_t threads = o.cpu_threads;
    if (threads == 0) {
        cpu_set_t set;
        threads = sched_getaffinity(0, sizeof set, &set) == 0 ? (uint32_t)CPU_COUNT(&set) : 1;
    }
    seda_runtime_t *rt = seda__alloc_aligned(sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->clock = o.clock ? o.clock : seda_clock_monotonic();
    rt->run_queue_capacity = o.run_queue_capacity ? o.run_queue_capacity : 65536;
    rt->pin = o.pin_threads != 0;
    atomic_init(&rt->refs, 1);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->park_lock, NULL);
    int r = seda_queue_create(&rt->run_queue, rt->run_queue_capacity, NULL);
    if (r < 0)
        goto fail;
    rt->run_queue_capacity = (uint32_t)seda_queue_capacity(rt->run_queue);
    rt->cpu = calloc(threads, sizeof(pthread_t));
    if (!rt->cpu) {
        r = -ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < threads; i++) {
        struct cpu_arg *a = malloc(sizeof *a);
        if (!a) {
            r = -ENOMEM;
            goto fail_threads;
        }
        *a = (struct cpu_arg){ rt, i };
        int e = pthread_create(&rt->cpu[i], NULL, cpu_thread, a);
        if (e != 0) {
            free(a);
            r = -e;
            goto fail_threads;
        }
        rt->cpu_threads = i + 1;
        char name[24];
        snprintf(name, sizeof name, "seda-cpu%u", i);
        name_thread(rt->cpu[i], name);
        if (rt->pin)
            pin_thread(rt->cpu[i], (int)i);
    }
    *out = rt;
    return 0;

fail_threads:
    seda_queue_close(rt->run_queue);
    for (uint32_t i = 0; i < rt->cpu_threads; i++)
        pthread_join(rt->cpu[i], NULL);
fail:
    free(rt->cpu);
    seda_queue_destroy(rt->run_queue, NULL, NULL);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->park_lock);
    free(rt);
    return r;
}

const seda_clock_t *seda_runtime_clock(const seda_runtime_t *rt)
{
    return rt->clock;
}

uint32_t seda_runtime_cpu_threads(const seda_runtime_t *rt)
{
    return rt->cpu_threads;
}

/* References to every live stage, in creation order; caller frees the array
 * and releases each. */
static seda_stage_t **snapshot_stages(seda_runtime_t *rt, size_t *n)
{
    pthread_mutex_lock(&rt->lock);
    size_t count = 0;
    for (seda_stage_t *s = rt->stages; s; s = s->next)
        count++;
    seda_stage_t **all = malloc((count ? count : 1) * sizeof *all);
    if (all) {
        size_t i = 0;
        for (seda_stage_t *s = rt->stages; s; s = s->next) {
            seda_stage_retain(s);
            all[i++] = s;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    *n = all ? count : 0;
    return all;
}

size_t seda_runtime_each_stage(seda_runtime_t *rt, void (*fn)(void *ctx, seda_stage_t *s), void *ctx)
{
    size_t n;
    seda_stage_t **all = snapshot_stages(rt, &n);
    for (size_t i = 0; i < n; i++) {
        fn(ctx, all[i]);
        seda_stage_release(all[i]);
    }
    free(all);
    return n;
}

seda_stage_t *seda_runtime_find_stage(seda_runtime_t *rt, const char *name)
{
    seda_stage_t *found = NULL;
    pthread_mutex_lock(&rt->lock);
    for (seda_stage_t *s = rt->stages; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            seda_stage_retain(s);
            found = s;
            break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return found;
}

/* One collection for the quiescence check: fills sig[] with every stage's
 * counters and says whether each stage has processed all it accepted. */
static bool collect(seda_stage_t **all, size_t n, uint64_t *sig)
{
    bool balanced = true;
    for (size_t i = 0; i < n; i++) {
        seda_stage_t *s = all[i];
        /* Done first, accepted second: done(t1) == accepted(t2) with t1 < t2
         * means nothing arrived or was pending in between. */
        uint64_t done = atomic_load_explicit(&s->processed, memory_order_acquire) +
                        atomic_load_explicit(&s->handed_back, memory_order_acquire) +
                        atomic_load_explicit(&s->dropped, memory_order_acquire);
        uint64_t accepted = stage_accepted(s);
        sig[2 * i] = done;
        sig[2 * i + 1] = accepted;
        if (done != accepted)
            balanced = false;
    }
    return balanced;
}

static int drain_graph(seda_runtime_t *rt, int64_t timeout_ns)
{
    size_t n;
    seda_stage_t **all = snapshot_stages(rt, &n);
    uint64_t *a = calloc(2 * n + 1, sizeof *a), *b = calloc(2 * n + 1, sizeof *b);
    int r = -ENOMEM;
    if (all && a && b) {
        int64_t deadline = timeout_ns < 0 ? INT64_MAX : seda__now_ns() + timeout_ns;
        bool prev = collect(all, n, a);
        for (;;) {
            sleep_briefly();
            bool now = collect(all, n, b);
            if (prev && now && memcmp(a, b, 2 * n * sizeof *a) == 0) {
                r = 0;
                break;
            }
            if (seda__now_ns() >= deadline) {
                r = -ETIMEDOUT;
                break;
            }
            uint64_t *t = a;
            a = b;
            b = t;
            prev = now;
        }
    }
    for (size_t i = 0; i < n; i++)
        seda_stage_release(all[i]);
    free(all);
    free(a);
    free(b);
    return r;
}

int seda_runtime_shutdown(seda_runtime_t *rt, int mode, int64_t timeout_ns)
{
    if (mode != SEDA_SHUTDOWN_DRAIN && mode != SEDA_SHUTDOWN_HAND_BACK)
        return -EINVAL;
    if (tls_runtime == rt)
        return -EDEADLK;
    int expected = RT_RUNNING;
    if (!atomic_compare_exchange_strong(&rt->state, &expected, RT_DRAINING))
        return -EPIPE;
    int r = 0;
    if (mode == SEDA_SHUTDOWN_DRAIN)
        r = drain_graph(rt, timeout_ns);
    atomic_store(&rt->state, RT_STOPPING);

    size_t n;
    seda_stage_t **all;
    /* A small array; without it nothing below can run, so wait for memory
     * rather than leave the runtime half stopped. */
    while (!(all = snapshot_stages(rt, &n)))
        sleep_briefly();
    /* Close every queue first, so that handlers still running cannot feed
     * stages already emptied; then hand back what is queued. */
    for (size_t i = 0; i < n; i++)
        stage_close(all[i]);
    for (size_t i = 0; i < n; i++)
        hand_back_all(all[i]);
    /* Parked stages back on the run queue (no new parking from STOPPING on),
     * so that every instance finishes and the threads can stop. */
    for (size_t i = 0; i < n; i++)
        unpark_upstream(all[i]);
    seda_queue_close(rt->run_queue);
    for (uint32_t i = 0; i < rt->cpu_threads; i++)
        pthread_join(rt->cpu[i], NULL);
    atomic_store(&rt->state, RT_STOPPED);
    /* The run queue may still hold scheduled instances: drop their refs. */
    void *item;
    while (seda_queue_dequeue(rt->run_queue, &item) == 0) {
        seda_stage_t *s = item;
        atomic_fetch_sub(&s->active, 1);
        seda_stage_release(s);
    }
    for (size_t i = 0; i < n; i++) {
        seda_stage_t *s = all[i];
        if (!atomic_exchange(&s->destroyed, true)) {
            stage_finish(s, SEDA_SHUTDOWN_HAND_BACK);
            unregister(s);
            seda_stage_release(s); /* the runtime's reference */
        }
        seda_stage_release(s);
    }
    free(all);
    return r;
}

void seda_runtime_destroy(seda_runtime_t *rt)
{
    if (!rt)
        return;
    if (tls_runtime == rt) {
        fprintf(stderr, "seda_runtime_destroy called from one of the runtime's own threads\n");
        abort(); /* it would free what this thread runs on */
    }
    seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0);
    /* A shutdown running on another thread: wait until it is done with rt. */
    while (atomic_load(&rt->state) != RT_STOPPED)
        sleep_briefly();
    /* Freed now, or when the last stage handle still held elsewhere goes. */
    runtime_release(rt);
}

/* ---- statistics and the graph ---------------------------------------------------------- */

void seda_stage_stats(const seda_stage_t *cs, seda_stage_stats_t *out)
{
    seda_stage_t *s = (seda_stage_t *)cs;
    out->enqueued = stage_accepted(s);
    out->processed = atomic_load_explicit(&s->processed, memory_order_acquire);
    out->handed_back = atomic_load_explicit(&s->handed_back, memory_order_acquire);
    out->dropped = atomic_load_explicit(&s->dropped, memory_order_acquire);
    out->pauses = atomic_load_explicit(&s->pauses, memory_order_relaxed);
    out->clogged = (uint32_t)atomic_load_explicit(&s->clogged, memory_order_relaxed);
    out->rejected_full = atomic_load_explicit(&s->rejected_full, memory_order_relaxed);
    out->rejected_closed = atomic_load_explicit(&s->rejected_closed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
    out->handler_errors = atomic_load_explicit(&s->handler_errors, memory_order_relaxed);
    out->handler_ns = atomic_load_explicit(&s->handler_ns, memory_order_relaxed);
    out->queue_length = stage_size(s);
    out->queue_peak = atomic_load_explicit(&s->queue_peak, memory_order_relaxed);
    if (out->queue_peak < out->queue_length)
        out->queue_peak = out->queue_length;
    out->threads = s->manager == SEDA_THREADS_DEDICATED
                       ? atomic_load_explicit(&s->live_threads, memory_order_relaxed)
                       : 0;
    out->concurrency = s->manager == SEDA_THREADS_DEDICATED
                           ? atomic_load_explicit(&s->target_threads, memory_order_relaxed)
                           : s->concurrency;
    out->batch_max = atomic_load_explicit(&s->batch_max, memory_order_relaxed);
    seda__histogram_snapshot(&s->queue_delay, &out->queue_delay);
    seda__histogram_snapshot(&s->service_time, &out->service_time);
}

size_t seda_stage_edges(const seda_stage_t *cs, seda_stage_t **out, size_t max)
{
    seda_stage_t *s = (seda_stage_t *)cs;
    seda_runtime_t *rt = s->rt;
    size_t n = 0;
    /* Resolve ids against the live stages; destroyed targets drop out. Lock
     * order: runtime, then stage. */
    pthread_mutex_lock(&rt->lock);
    pthread_mutex_lock(&s->edge_lock);
    size_t total = INLINE_EDGES + s->n_more;
    for (size_t i = 0; i < total; i++) {
        uint64_t id = i < INLINE_EDGES
                          ? atomic_load_explicit(&s->edges[i], memory_order_relaxed)
                          : s->more_edges[i - INLINE_EDGES];
        if (id == 0)
            continue;
        for (seda_stage_t *t = rt->stages; t; t = t->next) {
            if (t->id == id) {
                if (n < max) {
                    seda_stage_retain(t);
                    out[n] = t;
                }
                n++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->edge_lock);
    pthread_mutex_unlock(&rt->lock);
    return n;
}
