/*
 * The runtime (Sandstorm's "system manager") and its stages.
 *
 * A stage is a bounded event queue, an event handler and the threads that
 * drive it. Stages are created, looked up by name and destroyed at run time
 * through the runtime, which owns every thread:
 *
 *  - the shared thread manager: one thread per CPU (optionally pinned, named
 *    "seda-cpuN") serving every non-blocking stage. A stage with events is put
 *    on a run queue once; a thread takes it, dequeues one batch, runs the
 *    handler on the thread that already holds the batch, and puts the stage
 *    back if events remain. A handler never runs on two threads at once unless
 *    the stage's concurrency is above 1.
 *  - a dedicated pool per blocking stage (Sandstorm's thread pool per stage),
 *    named after the stage; it can grow and shrink while running.
 *
 * Thread rules: every function here may be called from any thread, including
 * from inside a handler, except where a comment says otherwise
 * (seda_runtime_shutdown, seda_runtime_destroy, seda_stage_destroy).
 *
 * Several runtimes in one process: a handler of runtime A may enqueue into a
 * stage of runtime B. To B it is an outside producer: the event is stamped
 * with B's clock, no edge is recorded (each runtime's stage graph holds its
 * own stages), a stage of A with pause_when_clogged does not wait for B's
 * stages, and once B shuts down the enqueue fails with -EPIPE as any outside
 * enqueue does. Destroying each other's stages is checked for deadlock
 * across runtimes (seda_stage_destroy).
 */
#ifndef SEDA_RUNTIME_H
#define SEDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "stats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_runtime seda_runtime_t;
typedef struct seda_stage seda_stage_t;

/* ---- runtime ---------------------------------------------------------- */

/* How much a log message matters (seda_runtime_options.log). */
enum seda_log_level {
    SEDA_LOG_DEBUG = 0,
    SEDA_LOG_INFO = 1,
    SEDA_LOG_WARNING = 2, /* something is wrong and the runtime works around it */
    SEDA_LOG_ERROR = 3,   /* something failed */
};

/*
 * Receives the runtime's log messages: a handler that blocked the shared
 * threads, and from the I/O layer fallbacks (io_uring refused, another
 * backend used) and resource limits (EMFILE). `stage` names the stage the
 * message is about, or is NULL; both strings are valid only during the
 * call. Called on whichever thread noticed (a shared thread after a batch,
 * an I/O thread), possibly from several at once: it must be thread-safe and
 * quick, must not block, and must not shut down or destroy the runtime.
 */
typedef void (*seda_log_fn)(void *ctx, int level, const char *stage, const char *message);

typedef struct seda_runtime_options {
    /* Shared thread manager size; 0: one per CPU the creating thread may run
     * on (its affinity mask, as a cpuset container restricts it). */
    uint32_t cpu_threads;
    /* Nonzero: pin shared thread i to the i-th of those CPUs (wrapping). */
    int pin_threads;
    uint32_t run_queue_capacity; /* bounds the sum of stage concurrencies; 0: 65536 */
    const seda_clock_t *clock;   /* NULL: the monotonic clock */
    /* The poller every shared thread's loop waits in (enum
     * seda_poller_backend, seda/poller.h): 0 (SEDA_POLLER_DEFAULT) takes the
     * SEDA_POLLER environment variable, else the built-in default. io_uring
     * falls back to epoll with a logged warning when the kernel refuses it. */
    int poller;
    uint32_t uring_entries; /* io_uring submission queue size; 0: the poller's default */
    /* Where log messages go (every level), with log_ctx. NULL: warnings and
     * errors to stderr ("seda: warning: stage 'x': ..."), the rest dropped. */
    seda_log_fn log;
    void *log_ctx;
} seda_runtime_options_t;

/*
 * Creates a runtime and starts its shared threads, each with its worker loop
 * and poller (created on that thread). opts may be NULL for defaults.
 * Returns 0, -EINVAL (a bad poller, or SEDA_POLLER naming no backend),
 * -ENOMEM (memory, or a thread that could not be started; nothing is left
 * running), or the poller's error (-EMFILE...).
 */
int seda_runtime_create(seda_runtime_t **out, const seda_runtime_options_t *opts);

enum seda_shutdown_mode {
    /* Process everything already accepted, including what handlers send on
     * while draining (cycles included), until the whole graph is quiescent. */
    SEDA_SHUTDOWN_DRAIN = 0,
    /* Process nothing more: every queued event goes to its stage's drop
     * callback; handlers already running finish their batch. */
    SEDA_SHUTDOWN_HAND_BACK = 1,
};

/*
 * Stops the runtime. From the call on, enqueues from threads that are not the
 * runtime's own (the outside world, timers) fail with -EPIPE; handlers keep
 * enqueueing to each other while a drain lasts. DRAIN waits until every
 * stage's accepted events have all been processed, twice in a row with no
 * change (quiescence of the whole graph, so cycles drain too), for at most
 * timeout_ns (< 0: no limit), then hands back whatever is left. Then every
 * queue is closed, every thread joined, and every stage's destroy callback
 * called. Returns 0; -ETIMEDOUT if the drain did not finish in time (the
 * rest was handed back); -ENOMEM if the drain could not be tracked (the rest
 * was handed back); -EPIPE after the first call; -EINVAL for an unknown
 * mode; -EDEADLK from one of the runtime's own threads (a handler). An
 * outside enqueue that passed its check just before the call may still be
 * accepted, and then handed back rather than processed.
 */
int seda_runtime_shutdown(seda_runtime_t *rt, int mode, int64_t timeout_ns);

/* Shuts down (HAND_BACK) if needed, or waits for a shutdown running on
 * another thread, and drops the caller's runtime. Stage handles still held
 * stay valid (enqueues fail with -EPIPE) until released; the memory goes with
 * the last of them. Never from a handler (the process aborts: the runtime
 * would free the thread's own ground). */
void seda_runtime_destroy(seda_runtime_t *rt);

/* The runtime's clock. */
const seda_clock_t *seda_runtime_clock(const seda_runtime_t *rt);

/* Threads in the shared thread manager. */
uint32_t seda_runtime_cpu_threads(const seda_runtime_t *rt);

/* The index of the shared thread calling (0..cpu_threads-1) if it is one of
 * rt's, else -1 (a dedicated pool, an outside thread). Any thread. */
int seda_runtime_thread_index(const seda_runtime_t *rt);

/* The poller backend the shared threads' loops run (after an io_uring
 * fallback, SEDA_POLLER_EPOLL), and a one-line description of it. */
int seda_runtime_poller(const seda_runtime_t *rt);
const char *seda_runtime_poller_describe(const seda_runtime_t *rt);

/* What one shared thread's worker loop has done (relaxed counters). */
typedef struct seda_loop_stats {
    uint64_t polls;       /* waits in the poller, blocking or not */
    uint64_t poll_events; /* readiness events and completions they returned */
    uint64_t sleeps;      /* waits that could block (nothing to run) */
    uint64_t wakeups;     /* times another thread woke this loop (eventfd writes) */
    uint64_t tasks;       /* work posted to this loop by any thread */
    uint64_t turns;       /* stage turns run */
} seda_loop_stats_t;

/* Fills *out for shared thread i. Returns 0 or -EINVAL. Any thread. */
int seda_runtime_loop_stats(const seda_runtime_t *rt, uint32_t i, seda_loop_stats_t *out);

/* ---- stages ----------------------------------------------------------- */

/*
 * The handler: called with a batch of 1..batch_max events in FIFO order. The
 * handler owns the events from then on (it may forward, filter, drop, reorder
 * or free them). Return 0, or a negative value to count a handler error (the
 * thread carries on).
 */
typedef int (*seda_handler_fn)(void *ctx, void **events, size_t count);

enum seda_thread_manager {
    /* The runtime's per-CPU threads, for handlers that do not block: one
     * that does starves every stage there. A batch that runs > 100 ms and
     * > 100x the stage's mean is counted (stalled_batches) and reported
     * once per stage through the log hook. */
    SEDA_THREADS_SHARED = 0,
    SEDA_THREADS_DEDICATED = 1, /* a pool of the stage's own (handlers that block) */
};

/* How a stage's queue behaves under overload. */
enum seda_discipline {
    SEDA_DISCIPLINE_FIFO = 0, /* oldest first, nothing dropped */
    /* CoDel (RFC 8289): once events have waited longer than codel_target_ns
     * for a whole codel_interval_ns, drop the oldest ones at an increasing
     * rate until the waiting time falls below target. Keeps queueing delay
     * bounded under overload; a short burst loses nothing. Dropped events go
     * to `drop` and count as `dropped`; control events are never dropped. */
    SEDA_DISCIPLINE_CODEL = 1,
};

/* The most priority classes a stage can have. */
#define SEDA_STAGE_MAX_CLASSES 8

/* The longest stage name, in bytes (without the terminating NUL). */
#define SEDA_STAGE_NAME_MAX 63

/* The largest batch a handler can be given (seda_stage_options.batch_max,
 * seda_stage_set_batch_max). */
#define SEDA_BATCH_MAX 1024

typedef struct seda_stage_options {
    const char *name;      /* unique within the runtime, 1..SEDA_STAGE_NAME_MAX bytes; copied */
    size_t queue_capacity; /* rounded up to a power of two; 0: 1024 */
    uint32_t batch_max;    /* events per handler call, at most (<= SEDA_BATCH_MAX); 0: 64 */
    int thread_manager;    /* enum seda_thread_manager */
    uint32_t concurrency;  /* SHARED: handler runs at once (0: 1).
                              * DEDICATED: initial threads (0: 1) */
    uint32_t max_threads;  /* DEDICATED: upper bound for seda_stage_set_threads (0: concurrency) */
    /* DEDICATED: nonzero pins the pool to the pin_cpu-th (wrapping) of the
     * CPUs the runtime's creator may run on (CPU pin_cpu on a machine with
     * no affinity restriction). */
    int pin_to_cpu;
    int pin_cpu;
    /* SHARED: nonzero binds the stage to shared thread thread_index: only
     * that thread runs it (other threads' enqueues put it on that thread's
     * own list and wake it), so its handler, and the stages it feeds on the
     * same thread, never leave it. Concurrency must be 1. Replicate a stage
     * per thread (one bound stage each) to keep each thread's work local. */
    int bind_to_thread;
    uint32_t thread_index;
    seda_handler_fn handler; /* required */
    void *ctx;               /* passed to every callback */
    /* Receives each event the stage gives back instead of processing
     * (destroy or shutdown with HAND_BACK, a drain that timed out, or its
     * queue discipline's drops, on the stage's own threads). Required:
     * without it such events would leak. Called on the thread that destroys
     * or shuts down, possibly while a handler still finishes its batch and,
     * when a stage destroy and a shutdown overlap, from both: it must be
     * thread-safe. HAND_BACK is a race with the stage's threads: batches
     * they took before the queue closed are still handled. */
    void (*drop)(void *ctx, void *event);
    /* Receives, instead of `drop`, each control event the stage gives back
     * (seda_stage_enqueue_control; only destroy and shutdown give those
     * back, a queue discipline never drops one), on the same threads and
     * with the same rules. Control events bypassed admission control, so a
     * binding that accounts for admitted events (an admission controller's
     * "left", see seda_batch_is_control) keeps them out here. NULL: `drop`
     * receives them too. */
    void (*drop_control)(void *ctx, void *event);
    /* Strict priority classes (1..SEDA_STAGE_MAX_CLASSES; 0: 1): one queue of
     * queue_capacity per class; the handler gets class 0's events first,
     * class 1's only when class 0 is empty, and so on. Plain enqueues go to
     * the last (lowest) class, control events to class 0. */
    uint32_t classes;
    /* SHARED only: while a stage this stage's handler feeds (in the same
     * runtime) is clogged (an enqueue into it found it full), do not
     * schedule this stage: its
     * events wait in its own queue (backpressure travels upstream) until
     * that stage drains to a quarter. Where waiting would close a cycle
     * (that stage waits, through a chain of waiting stages, for this one),
     * the chain is rescheduled instead: the cycle keeps running and its
     * handlers meet full queues, to keep or shed events as they choose. */
    int pause_when_clogged;
    int discipline;            /* enum seda_discipline (0: FIFO) */
    int64_t codel_target_ns;   /* CODEL: acceptable waiting time (0: 5 ms) */
    int64_t codel_interval_ns; /* CODEL: how long above target before dropping (0: 100 ms) */
    /* Called once, on the destroying or shutting-down thread, after every
     * thread that could call the handler is done with it and after the last
     * drop: the place to free ctx. May be NULL. */
    void (*destroy)(void *ctx);
} seda_stage_options_t;

/*
 * Creates and registers a stage; it runs as soon as events arrive. Stores a
 * handle in *out that the caller owns (release it with seda_stage_release);
 * the runtime keeps its own reference until the stage is destroyed.
 * Returns 0; -EINVAL (no name, handler or drop; bad thread manager; name
 * longer than SEDA_STAGE_NAME_MAX bytes; batch_max above SEDA_BATCH_MAX;
 * max_threads below concurrency; more than SEDA_STAGE_MAX_CLASSES classes;
 * bind_to_thread on a dedicated pool, with concurrency above 1 or a
 * thread_index that is not a shared thread; unknown
 * discipline or negative CoDel times; pause_when_clogged on a dedicated
 * pool); -EEXIST (name taken); -ENOSPC (the run queue cannot take the
 * stage's concurrency); -EPIPE (runtime shut down); -ENOMEM (memory or
 * threads).
 * If it fails, no callback is ever called and ctx still belongs to the caller.
 */
int seda_stage_create(seda_runtime_t *rt, const seda_stage_options_t *opts, seda_stage_t **out);

/*
 * Looks a stage up by name. Returns a new reference (release it) or NULL
 * (no such stage; NULL rt or name).
 */
seda_stage_t *seda_runtime_find_stage(seda_runtime_t *rt, const char *name);

/* Reference counting: a destroyed stage's memory lives until the last
 * reference goes; enqueues through a stale reference fail with -EPIPE. */
void seda_stage_retain(seda_stage_t *s);
void seda_stage_release(seda_stage_t *s);

/*
 * Enqueues one event. Returns 0; -EAGAIN (full; counted); -EPIPE (stage
 * destroyed or runtime stopping; counted). On failure the event still belongs
 * to the caller. The stage is scheduled if it was idle. When called from a
 * handler, records the edge "calling stage -> this stage" for the stage graph.
 *
 * The event is stamped with the time it entered the queue (the runtime's
 * clock, in microseconds), from which CoDel decides and the queue-delay
 * histogram is kept. One exception saves a clock read on the shared threads'
 * hot path: a handler on the shared threads enqueueing into a FIFO stage of
 * its own runtime stamps the start of its batch, which is early by at most
 * the time the handler ran before the enqueue (short, by the shared threads'
 * contract); the delay recorded downstream may include that much.
 */
int seda_stage_enqueue(seda_stage_t *s, void *event);

/*
 * seda_stage_enqueue, waiting while the stage's queue is full for at most
 * timeout_ns (< 0: no limit): backpressure for producers that prefer to
 * wait. Returns 0; -ETIMEDOUT (counted as a full rejection); -EPIPE.
 * On a shared thread (a handler of the shared thread manager, of any
 * runtime) it never waits: waiting there could deadlock the graph (the
 * stage that would make room may need this thread; in a cycle it always
 * does), and handlers there must not block. It enqueues when the queue has
 * room, and returns -EDEADLK (counted as a full rejection) only when it
 * would have to wait. From a dedicated pool in a cyclic graph, give a
 * timeout.
 */
int seda_stage_enqueue_wait(seda_stage_t *s, void *event, int64_t timeout_ns);

/*
 * seda_stage_enqueue into priority class `cls` (0 is served first). Returns
 * as seda_stage_enqueue, or -EINVAL for a class the stage does not have.
 */
int seda_stage_enqueue_class(seda_stage_t *s, void *event, uint32_t cls);

/*
 * seda_stage_enqueue for a control event (a cleanup tick, a shutdown notice):
 * the queue discipline never drops it, and it goes to class 0. Admission policies above the C core
 * must let such events pass as well.
 */
int seda_stage_enqueue_control(seda_stage_t *s, void *event);

/*
 * seda_stage_enqueue_wait into priority class `cls`. Returns as
 * seda_stage_enqueue_wait, or -EINVAL for a class the stage does not have.
 */
int seda_stage_enqueue_wait_class(seda_stage_t *s, void *event, uint32_t cls, int64_t timeout_ns);

/*
 * Enqueues `count` events into the stage's last (lowest) class, all or none,
 * adjacent and in order, with one stamp. Returns count; 0 for count 0;
 * -EAGAIN (not enough room; counted once); -EPIPE; -EINVAL when count
 * exceeds the queue's capacity (seda_stage_queue_capacity), which no wait
 * could make room for. On failure every event still belongs to the caller.
 */
int seda_stage_enqueue_many(seda_stage_t *s, void *const *events, size_t count);

/*
 * seda_stage_enqueue_many into priority class `cls`. Returns as
 * seda_stage_enqueue_many, or -EINVAL for a class the stage does not have.
 */
int seda_stage_enqueue_many_class(seda_stage_t *s, void *const *events, size_t count, uint32_t cls);

/*
 * Inside a handler, about the batch it is running: whether events[index]
 * (by its position in the array as the handler received it) entered the
 * queue as a control event (seda_stage_enqueue_control; timers delivered
 * that way too). Control events bypassed admission control, so a binding
 * that accounts for admitted events (an admission controller's "left")
 * must skip them. Returns 1 or 0; -EINVAL for an index beyond the batch, or
 * when the calling thread is not running a handler. Call it on the
 * handler's thread, during the handler call.
 */
int seda_batch_is_control(size_t index);

/*
 * Inside a handler: how many events of its batch are control events (0 in
 * the common case, so a binding can skip asking per event). -EINVAL when
 * the calling thread is not running a handler. Costs a pass over the batch.
 */
int seda_batch_control_count(void);

/*
 * Destroys a stage while others run: closes its queue (later enqueues fail
 * with -EPIPE), then DRAIN lets its threads process what is queued, HAND_BACK
 * gives it to the drop callback; waits for running handlers, joins a
 * dedicated pool, calls the destroy callback, and unregisters the name.
 * Returns 0; -EPIPE if already destroyed; -EINVAL for an unknown mode;
 * -EDEADLK where the wait could never end: from the stage's own handler; for
 * a shared-thread stage, from a handler on the shared threads (it would wait
 * for its own thread; destroy from another thread or a dedicated stage); and
 * from a handler of a stage that the stage being destroyed waits for through
 * destroys in progress (A's handler destroying B while B's handler destroys
 * A: one of the two gets -EDEADLK, the other proceeds), across runtimes too.
 * The caller's reference stays valid until released.
 */
int seda_stage_destroy(seda_stage_t *s, int mode);

/*
 * Resizes a dedicated pool to n threads (1..max_threads) while it runs.
 * Growing starts threads now; shrinking lets surplus threads exit after their
 * current batch. Returns 0, -EINVAL, -ENOTSUP (shared thread manager),
 * -EPIPE (destroyed) or -ENOMEM (no thread could be started; the pool may
 * have grown part of the way).
 */
int seda_stage_set_threads(seda_stage_t *s, uint32_t n);

/* A stage's load state, as reported to a watcher. */
enum seda_stage_state {
    SEDA_STAGE_CLOGGED = 1, /* an enqueue found the queue full */
    SEDA_STAGE_DRAINED = 2, /* a clogged stage's queue fell to a quarter of its capacity */
};

typedef void (*seda_stage_state_fn)(void *ctx, seda_stage_t *stage, int state);

/*
 * Calls fn(ctx, stage, state) on every clogged/drained transition of s, once
 * per transition: CLOGGED on the producer thread whose enqueue found the
 * queue full, DRAINED on the stage's thread after a batch. fn must be quick
 * and must not block (it may enqueue a control event to another stage).
 * One watcher per stage, installed at any time (transitions before the
 * install are not reported), from any thread. Returns 0; -EBUSY if the stage
 * has one (of two racing installs, exactly one succeeds); -EINVAL for a NULL
 * fn.
 */
int seda_stage_watch(seda_stage_t *s, seda_stage_state_fn fn, void *ctx);

/* Events waiting in the stage's queues now: a cheap snapshot (two loads
 * per class), for admission policies that run on every enqueue. */
size_t seda_stage_queue_length(const seda_stage_t *s);

/* How many events one of the stage's queues holds (each priority class has
 * one): seda_stage_options.queue_capacity rounded up to a power of two (at
 * least 2). The most one seda_stage_enqueue_many can take. Any thread. */
size_t seda_stage_queue_capacity(const seda_stage_t *s);

/*
 * Sets the largest batch the handler gets (1..SEDA_BATCH_MAX) while the stage runs
 * (Sandstorm's batching controller turns this knob); the next dequeue uses
 * it. Returns 0 or -EINVAL.
 */
int seda_stage_set_batch_max(seda_stage_t *s, uint32_t n);

/* The stage's name (valid while a reference is held). */
const char *seda_stage_name(const seda_stage_t *s);

/* Copies the stage's counters and histograms into *out. */
void seda_stage_stats(const seda_stage_t *s, seda_stage_stats_t *out);

/* ---- the stage graph -------------------------------------------------- */

/*
 * Calls fn(ctx, stage) for every live stage (with a reference held for the
 * call), in creation order. Returns how many. Do not create or destroy stages
 * from fn.
 */
size_t seda_runtime_each_stage(seda_runtime_t *rt, void (*fn)(void *ctx, seda_stage_t *s),
                               void *ctx);

/*
 * The stages this stage's handler has enqueued into, learned at run time:
 * writes up to `max` of them (new references; release each) into out and
 * returns how many there are, which may exceed max. Those are the live
 * stages and, once seda_runtime_shutdown has run, the stages it took down:
 * the runtime keeps them until seda_runtime_destroy, so the final graph
 * (edges first used while draining included) stays readable. Stages taken
 * down by seda_stage_destroy are left out.
 */
size_t seda_stage_edges(const seda_stage_t *s, seda_stage_t **out, size_t max);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_RUNTIME_H */
