/*
 * Private to the runtime's files (include/seda/runtime.h is the contract):
 * the stage and runtime structs, the per-thread worker state, and the seda__
 * calls the runtime's files make into each other.
 *
 * Which file does what:
 *   runtime.c       the runtime object: create, reference, registry of stages
 *   stage.c         the stage object: create, references, accessors, destroy
 *   classes.c       a stage's queues, one per priority class
 *   scheduler.c     the shared thread manager: run queue, run-next slot,
 *                   turns, starting and stopping the shared threads
 *   loop.c          the worker loop of each shared thread: stages, posted
 *                   work, its timers, its poller, sleeping (loop.h)
 *   pool.c          dedicated pools: their threads, resizing
 *   batch.c         running one batch through a handler, its statistics
 *   enqueue.c       the enqueue paths and the stage graph they record
 *   backpressure.c  clogged/drained, parking stages upstream of clogged ones
 *   codel.c         the CoDel queue discipline
 *   shutdown.c      hand back, drain, stage finish, runtime shutdown/destroy
 *   thread.c        starting, naming and pinning threads
 *   log.c           the log hook (seda_runtime_options.log)
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
 * Work that lives outside every queue for a while (a file stage's requests
 * in the kernel, completions waiting for room in a full sink) is counted as
 * held on a stage (seda__stage_hold / seda__stage_unhold): taken counts as
 * accepted, given back as processed, so a drain waits for it too.
 */
#ifndef SEDA_RUNTIME_INTERNAL_H
#define SEDA_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "seda/queue.h"
#include "seda/runtime.h"

#define SEDA__INLINE_EDGES 8

/* The runtime's life: RUNNING; DRAINING (shutdown's drain); STOPPING (queues
 * closed, threads stopping); STOPPED (shared threads joined); DONE (every
 * stage finished: shutdown has returned or is returning). */
enum {
    SEDA__RT_RUNNING = 0,
    SEDA__RT_DRAINING = 1,
    SEDA__RT_STOPPING = 2,
    SEDA__RT_STOPPED = 3,
    SEDA__RT_DONE = 4,
};

/*
 * What a thread of the runtime (a shared thread or a pool thread) keeps for
 * itself: which runtime owns it, which stage's handler it runs, that batch's
 * start time (an enqueue from a handler reads these instead of the clock),
 * the run-next slot, and its batch buffers. Only its own thread touches it;
 * other threads never do. A thread finds its worker through seda__worker_tls
 * (NULL on threads that are not the runtime's).
 */
struct seda__worker {
    seda_runtime_t *rt;
    seda_stage_t *stage; /* the stage whose handler runs now, or NULL */
    uint32_t batch_us;   /* that batch's start stamp */
    /* That batch's size; its stamps are in `stamps` (one per event, in the
     * order the handler got them), for seda_batch_is_control. */
    size_t batch_len;
    /* A thread of the shared thread manager (not a dedicated pool). */
    bool cpu_thread;
    /* A shared thread's "run next" slot: a stage its own handler just fed
     * runs on this thread, right after the current turn, while the events are
     * still in its cache: the hop costs a function call, not a wake-up and
     * cache misses on another CPU. The slot's stage holds an instance's
     * reference, like a run queue entry. */
    seda_stage_t *next;
    /* When this thread's last batch ended (0: stale, e.g. after waiting): the
     * next batch's start time, saving a clock read (~25 ns here) per batch. */
    int64_t last_end;
    /* Set by an enqueue that found a stage full, from a handler whose stage
     * pauses when clogged: the stage it should wait for (a reference). */
    seda_stage_t *blocked_by;
    /* Room for the largest batch any controller may set. */
    void **buf;
    uint32_t *stamps;
    uint32_t index; /* shared threads: 0..cpu_threads-1 */
    /* Shared threads: the worker loop (loop.h); NULL on pool threads. */
    struct seda__loop *loop;
    /* While the thread starts: how the creating thread learns the outcome. */
    struct start_sync *start;
};

extern _Thread_local struct seda__worker *seda__worker_tls;

/* This thread's worker if it belongs to rt, else NULL. */
static inline struct seda__worker *seda__worker_of(const seda_runtime_t *rt)
{
    struct seda__worker *w = seda__worker_tls;
    return w && w->rt == rt ? w : NULL;
}

/* A dedicated pool's thread (pool.c). */
struct seda__pool_thread;

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
    void (*drop_control)(void *ctx, void *event); /* NULL: drop */
    void (*destroy_ctx)(void *ctx);
    /* Read at every dequeue, written by a batching controller now and then:
     * relaxed, since any value in range is a valid batch size. */
    _Atomic uint32_t batch_max;
    uint32_t concurrency; /* shared: runs at once; dedicated: max threads */
    int manager;
    int pin_cpu;
    char name[SEDA_STAGE_NAME_MAX + 1];
    /* A stage bound to one shared thread: that thread's loop (only it runs
     * the stage); NULL for any shared thread or a dedicated pool. */
    struct seda__loop *home;
    struct seda_stage *next; /* runtime's list (live or retired), under rt->lock */
    /* Set by whoever takes the stage down (destroy or shutdown), once. */
    _Atomic bool destroyed;
    /* Set (release) when that is done: its threads are done with the handler
     * and the destroy callback has returned. Read (acquire) by a shutdown
     * that found the stage already being destroyed by another thread. */
    _Atomic bool finished;

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
    /* Batches on the shared threads that ran far longer than usual (a
     * handler that blocked them; see batch.c), and whether that was logged. */
    _Atomic uint64_t stalled_batches, stalled_ns;
    _Atomic bool stall_logged;
    seda__histogram_t queue_delay, service_time;

    /* Work held outside the queue (see "Quiescence" above): both only grow. */
    _Atomic uint64_t held_in, held_out;

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
    struct seda_stage *chain_next; /* a cycle being unparked, under park_lock */
    struct seda_stage **paused;
    size_t n_paused, cap_paused;
    /* The watcher, installed once at any time: state_ctx is written (under
     * rt->park_lock, which serialises installs) before on_state is stored
     * with release; a reader loads on_state with acquire, then state_ctx. */
    _Atomic(seda_stage_state_fn) on_state;
    void *state_ctx;
    _Atomic uint32_t refs;

    /* The stage graph: the ids of the stages this stage's handler has sent
     * events to. Ids, not references: a cyclic graph would otherwise keep
     * itself alive. 0 marks a free slot. */
    uint64_t id;
    _Atomic uint64_t edges[SEDA__INLINE_EDGES];
    pthread_mutex_t edge_lock;
    uint64_t *more_edges;
    size_t n_more, cap_more;

    /* Dedicated pool. */
    pthread_mutex_t pool_lock;
    struct seda__pool_thread *threads;
    _Atomic uint32_t target_threads, live_threads;
};

struct seda_runtime {
    const seda_clock_t *clock;
    seda_queue_t *run_queue;
    uint32_t cpu_threads;
    pthread_t *cpu;
    struct seda__worker **workers; /* one per shared thread */
    uint32_t workers_len;          /* entries in workers (some may be NULL) */
    bool pin;
    seda_log_fn log; /* NULL: warnings and errors to stderr */
    void *log_ctx;
    /* The CPUs the creating thread may run on (its affinity mask, which a
     * cpuset container restricts): pinning picks among these. */
    cpu_set_t allowed_cpus;
    alignas(SEDA__CACHELINE) _Atomic int state;

    /* Shared threads with nothing to run (spinning on, or parked at, the run
     * queue). A hint, relaxed both ways: a busy thread reads it to decide
     * whether to hand its run-next slot to an idle thread. Its own line: it
     * changes on every idle transition, `state` is read by every enqueue. */
    alignas(SEDA__CACHELINE) _Atomic uint32_t idle_threads;

    /* The owner's reference plus one per stage still in memory: a stage
     * handle may outlive seda_runtime_destroy, and its enqueues read here. */
    alignas(SEDA__CACHELINE) _Atomic uint32_t refs;
    pthread_mutex_t lock; /* the stage list and the run queue budget */
    /* Parking stages upstream of clogged ones: rare, so one lock for the
     * whole runtime, which also makes the cycle check race-free. */
    pthread_mutex_t park_lock;
    struct seda_stage *stages, *last;
    /* The stages shutdown took down, with the runtime's reference, kept
     * until seda_runtime_destroy for seda_stage_edges (the final graph). */
    struct seda_stage *retired;
    uint64_t concurrency_sum;
    uint32_t run_queue_capacity;
    uint64_t last_id;
    /* The next shared thread an I/O component (a file stage) binds to when
     * told none: spreads them round robin (seda__runtime_spread_thread). */
    _Atomic uint32_t io_spread;
};

/* Stamps: the enqueue time in microseconds, 31 bits (wrapping every 35
 * minutes), and bit 31 set for a control event, which no queue discipline
 * may drop. */
#define SEDA__STAMP_CONTROL (UINT32_C(1) << 31)
#define SEDA__STAMP_TIME (SEDA__STAMP_CONTROL - 1)

static inline uint32_t seda__us_stamp(int64_t ns)
{
    return (uint32_t)(ns / 1000) & SEDA__STAMP_TIME;
}

/* ---- runtime.c ---- */
void seda__runtime_release(seda_runtime_t *rt);
/* References to every live stage, in creation order; the caller frees the
 * array and releases each. NULL (and *n = 0) without memory. */
seda_stage_t **seda__snapshot_stages(seda_runtime_t *rt, size_t *n);
/* Takes s out of the runtime's list (and its run queue budget). */
void seda__unregister(seda_stage_t *s);
/* seda__unregister, then keeps s (and the runtime's reference to it) on
 * the retired list, where seda_stage_edges still finds it. */
void seda__retire(seda_stage_t *s);
/* Releases the retired stages (seda_runtime_destroy). */
void seda__release_retired(seda_runtime_t *rt);

/* ---- classes.c ---- */
/* Takes up to max events from the highest class that has any. Returns a
 * count, -EAGAIN when every class is empty (or momentarily unpublished), or
 * -EPIPE when every class is closed and drained. */
int seda__stage_dequeue(seda_stage_t *s, void **buf, uint32_t *stamps, size_t max);
/* Events waiting in every class (seq_cst loads; see seda_queue_size). */
size_t seda__stage_size(const seda_stage_t *s);
uint64_t seda__stage_accepted(const seda_stage_t *s);
void seda__stage_close(seda_stage_t *s);
bool seda__stage_is_closed(const seda_stage_t *s);
void seda__stage_free_queues(seda_stage_t *s);

/* ---- scheduler.c ---- */
/* Puts one instance of s on the run queue; the instance owns a reference
 * (a new one when take_ref). */
void seda__push_stage(seda_stage_t *s, bool take_ref);
/* Schedules s on the shared threads if it is idle (after an enqueue). */
void seda__schedule(seda_stage_t *s);
/* Starts the shared threads, each creating its loop from opts (NULL:
 * defaults); rt->cpu_threads counts those started. */
int seda__scheduler_start(seda_runtime_t *rt, uint32_t threads, const seda_runtime_options_t *opts);
/* One turn of a shared thread (worker w) on an instance of s. */
void seda__run_turn(struct seda__worker *w, seda_stage_t *s);
/* Closes the run queue and joins the shared threads. */
void seda__scheduler_stop(seda_runtime_t *rt);
/* Frees what seda__scheduler_start allocated (the threads are joined). */
void seda__scheduler_free(seda_runtime_t *rt);

/* ---- pool.c ---- */
/* Starts one pool thread. pool_lock held. */
int seda__start_pool_thread(seda_stage_t *s);
/* Joins pool threads that have exited; all of them when `all`. pool_lock held. */
void seda__reap_pool(seda_stage_t *s, bool all);
/* Wakes and joins every thread of a closed stage's pool. */
void seda__pool_join(seda_stage_t *s);

/* ---- batch.c ---- */
/* Allocates a worker's batch buffers (before its thread starts, so that a
 * failure is a return code, not an abort). Returns 0 or -ENOMEM. */
int seda__worker_alloc(struct seda__worker *w);
void seda__worker_free(struct seda__worker *w);
/* Runs the batch of k events the calling runtime thread (worker w) has
 * dequeued into w->buf / w->stamps through the handler, and records its
 * statistics. */
void seda__run_batch(struct seda__worker *w, seda_stage_t *s, size_t k, bool sample_depth);

/* ---- backpressure.c ---- */
/* After a batch: a clogged stage whose queue fell to a quarter has drained. */
void seda__check_drained(seda_stage_t *s);
/* After an enqueue into s found it full: marks it clogged (reporting the
 * transition), then checks whether it drained meanwhile. */
void seda__note_full(seda_stage_t *s);
/* Parks this turn's instance of `up` on `down` if `down` is still clogged
 * (not where it would close a cycle). Returns whether it parked. */
bool seda__park_upstream(seda_stage_t *up, seda_stage_t *down);
/* Reschedules every stage parked on `down` (it drained, or is going away). */
void seda__unpark_upstream(seda_stage_t *down);
/* Takes s out of the list it is parked in, if any, and reschedules it. */
void seda__unpark_self(seda_stage_t *s);

/* ---- codel.c ---- */
/* Filters a dequeued batch through CoDel; returns how many events remain,
 * compacted in order. */
size_t seda__codel_filter(seda_stage_t *s, void **events, uint32_t *stamps, size_t k, int64_t now);

/* ---- shutdown.c ---- */
/* Finishes a stage whose `destroyed` flag the caller set. */
void seda__stage_finish(seda_stage_t *s, int mode);

/* ---- thread.c ---- */
void seda__name_thread(pthread_t t, const char *name);
/* The CPU number of the index-th CPU (wrapping around) set in `allowed`,
 * or -1 when none is. */
int seda__nth_allowed_cpu(const cpu_set_t *allowed, int index);
/* Pins t to the index-th CPU (wrapping) of the CPUs the runtime's creator
 * was allowed (rt->allowed_cpus). */
void seda__pin_thread(const seda_runtime_t *rt, pthread_t t, int index);

#endif /* SEDA_RUNTIME_INTERNAL_H */
