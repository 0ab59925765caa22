/*
 * Private to the C core: the worker loop of each shared (per-CPU) thread
 * (docs/design/io.md section 1), and what the I/O layers (sockets, disk)
 * build on: watching descriptors on a loop, posting work to a loop from any
 * thread, running work before the loop next polls, and a timer wheel the
 * loop polls itself.
 *
 * One loop per shared thread. Its poller and everything registered in it
 * belong to that thread (the owner); only the owner calls the functions
 * marked "owner". seda__loop_post and seda__loop_wake may be called from any
 * thread.
 *
 * Idle protocol. A loop with nothing to run announces that it sleeps
 * (`sleeping` = 1, a seq_cst store), looks at every source of work once more
 * (seq_cst loads: the run queues' sizes, the inbox), and only then waits in
 * its poller, where its wake eventfd is registered. A thread that makes work
 * for it publishes first (a seq_cst RMW: a queue's tail, the inbox's head)
 * and then reads `sleeping` (seq_cst); by the total order of seq_cst
 * operations either the waker sees 1 and writes the eventfd, or the loop's
 * second look sees the work. The waker exchanges `sleeping` to 0 before
 * writing, so one sleep costs at most one write however many threads wake it,
 * and the eventfd (not a semaphore) is drained by one read.
 */
#ifndef SEDA_LOOP_H
#define SEDA_LOOP_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "poller.h"
#include "seda/poller.h"
#include "seda/queue.h"
#include "seda/runtime.h"
#include "seda/timer.h"

struct seda__loop;

/*
 * A descriptor watched by a loop. Embedded in the object that owns the
 * descriptor (a connection, a listener, a disk engine's eventfd); the poller
 * reports it with the watcher as udata.
 */
struct seda__watcher {
    /* Readiness (every backend): `events` are enum seda_poller_events. */
    void (*on_ready)(struct seda__loop *l, struct seda__watcher *w, uint32_t events);
    /* Completions of operations started through the poller's completion ops
     * (io_uring) with this watcher as udata; NULL if it starts none. */
    void (*on_complete)(struct seda__loop *l, struct seda__watcher *w,
                        const struct seda__poller_completion *c);
    int fd;
};

/*
 * Work for a loop: a node embedded in whatever the work is about, so posting
 * never allocates and never fails. `run` is called once on the loop's
 * thread; from then on the node is the caller's again (run may free it or
 * post it anew).
 */
struct seda__task {
    struct seda__task *next;
    void (*run)(struct seda__loop *l, struct seda__task *t);
};

/* The socket layer's counters of one loop (seda_io_stats_t). They live in
 * the loop, not in the socket state: statistics are read from any thread,
 * and the socket state may be freed meanwhile (after the runtime stopped,
 * by whichever thread releases the last event), while the loop's memory
 * lasts as long as the runtime. The loop's thread writes them; anyone
 * reads them relaxed. */
struct seda__io_counters {
    _Atomic uint64_t accepted, refused, emfile_episodes, connects, connect_failed, connections_open,
        packets_in, bytes_in, bytes_out, reads, writes, timeouts, clogged, stalls;
};

struct seda__loop {
    seda_runtime_t *rt;
    struct seda__worker *worker;
    uint32_t index; /* the shared thread's index */
    seda_poller_t *poller;
    /* The poller's completion operations (io_uring), or NULL. */
    const struct seda__poller_completion_ops *completion;
    int trigger; /* enum seda_poller_trigger of the poller */

    /* Stages bound to this loop's thread, scheduled here only. Any thread
     * pushes (seda__push_stage), this loop pops. Capacity: the runtime's run
     * queue capacity, which bounds every stage's concurrency together, so a
     * push never finds it full for long. */
    seda_queue_t *local;

    /* Posted work: a stack any thread pushes on (a seq_cst CAS on its head),
     * which the loop takes whole (exchange with NULL) and runs oldest first.
     * SEDA__INBOX_CLOSED once the loop has exited. */
    alignas(SEDA__CACHELINE) _Atomic(struct seda__task *) inbox;
    /* 1 while the loop waits (or is about to wait) in its poller. */
    _Atomic uint32_t sleeping;
    int wake_fd; /* eventfd, non-semaphore, registered in the poller */

    /* Owner only from here on. */
    alignas(SEDA__CACHELINE) struct seda__task *deferred, **deferred_tail;
    /* Set when the loop leaves its main loop (before io_stop): work that runs
     * from then on (the last posted tasks) must not start anything new. */
    bool exiting;
    seda_timers_t *timers; /* polled by this loop; clock: the runtime's */
    int64_t timer_due;     /* when it next has work (clock ns); INT64_MAX: none */
    /* Descriptors watched, the wake eventfd excluded, plus the completion
     * operations (io_uring) the socket layer keeps armed: while nonzero the
     * loop polls every few turns and sleeps without spinning first. */
    uint32_t watchers;
    /* The socket layer's per-loop state (published with a release store:
     * statistics read it from other threads; it holds a reference on the
     * runtime, so this loop's memory outlives it), and its hooks:
     *  - io_poll, after every poll (blocking or not) once its events are
     *    dispatched: serve connections that still have input, retry
     *    deliveries into full sinks;
     *  - io_more: while true, the loop polls without blocking instead of
     *    sleeping (a connection used up its read budget and waits for its
     *    next turn: edge-triggered pollers will not report it again);
     *  - io_stop, on this thread before the loop exits (close what is left). */
    _Atomic(void *) io;
    struct seda__io_counters io_st; /* its statistics (above) */
    void (*io_poll)(struct seda__loop *l);
    bool io_more;
    void (*io_stop)(struct seda__loop *l);
    /* Work to run on this thread when the loop exits (seda__loop_at_exit). */
    struct seda__task *at_exit;
    /* Waits in the poller begun so far (bumped before each): the socket
     * layer reads the clock once per wait, before it handles the first
     * readiness or completion the wait brought (socket_io.c). */
    uint64_t waits;

    /* Counters (owner writes, anyone reads relaxed): see seda_loop_stats_t. */
    _Atomic uint64_t polls, poll_events, sleeps, wakeups, tasks, turns;
};

/* The loop of the calling thread if it is a shared thread of any runtime,
 * else NULL. */
struct seda__loop *seda__loop_current(void);

/* The loop of rt's shared thread i (i < seda_runtime_cpu_threads). */
struct seda__loop *seda__loop_of(seda_runtime_t *rt, uint32_t i);

/*
 * Watches w->fd for `events` (enum seda_poller_events) on loop l. Owner.
 * Returns 0 or the poller's error (-EMFILE on select for fd >= FD_SETSIZE).
 */
int seda__loop_watch(struct seda__loop *l, struct seda__watcher *w, uint32_t events);
/* Changes the events (level backends; edge backends re-arm). Owner. */
int seda__loop_rewatch(struct seda__loop *l, struct seda__watcher *w, uint32_t events);
/* Stops watching (before the descriptor is closed). Owner. */
int seda__loop_unwatch(struct seda__loop *l, struct seda__watcher *w);

/* Runs t->run(l, t) on l's thread soon; posts from one thread run in order.
 * Any thread (the owner too). Returns true, or false once the loop has
 * exited (its inbox is closed after its last run): t is then the caller's
 * and will never run. A post that returned true always runs, during the
 * loop's exit at the latest (after io_stop; l->exiting is then set). */
bool seda__loop_post(struct seda__loop *l, struct seda__task *t);

/* Runs t->run(l, t) on this thread before the loop next polls or sleeps
 * (after the stages it is running now): where output is flushed. Owner. */
void seda__loop_defer(struct seda__loop *l, struct seda__task *t);

/*
 * Runs t->run(l, t) on l's thread when the loop exits (the runtime stops:
 * its queues are closed), after the socket layer's io_stop and before the
 * last posted tasks: where an I/O component finishes, on the thread that
 * owns them, what the kernel still holds for it (a ring only this thread may
 * enter), stops its loop timers and unwatches its descriptors. It may block
 * briefly. Owner; seda__loop_cancel_at_exit takes t back (it will not run).
 */
void seda__loop_at_exit(struct seda__loop *l, struct seda__task *t);
void seda__loop_cancel_at_exit(struct seda__loop *l, struct seda__task *t);

/* Whether rt's shared threads have all exited (its shutdown is over):
 * nothing runs on any of its loops again, and what was posted to them and
 * not run never will be. Any thread. */
bool seda__loop_all_exited(const seda_runtime_t *rt);

/* Wakes l if it sleeps (one load when it does not). Any thread, after
 * publishing the work with a seq_cst RMW. */
void seda__loop_wake(struct seda__loop *l);

/* Wakes one sleeping loop of rt (for work on the global run queue). */
void seda__loop_wake_any(seda_runtime_t *rt);

/*
 * A timer of the loop's own wheel, embedded in what it times (a connection's
 * idle deadline, a connect timeout, a paused listener). fire(l, t, false)
 * runs on the loop's thread at the deadline (at most one tick of 1 ms
 * late); fire(l, t, true) if the loop goes away with the timer pending (the
 * owner releases what it must). Owner thread only.
 */
struct seda__loop_timer {
    void (*fire)(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled);
    seda_timer_id_t id; /* 0 while not pending */
};

/* Arms t for the clock time deadline_ns (re-arms a pending t). Returns 0 or
 * -ENOMEM. Owner. */
int seda__loop_timer_start(struct seda__loop *l, struct seda__loop_timer *t, int64_t deadline_ns);
/* Disarms t if pending (fire is not called). Owner. */
void seda__loop_timer_stop(struct seda__loop *l, struct seda__loop_timer *t);

/* ---- used by scheduler.c -------------------------------------------------- */

/* Creates the loop of a shared thread, on that thread. Returns 0 or -errno. */
int seda__loop_create(struct seda__worker *w, const seda_runtime_options_t *opts,
                      struct seda__loop **out);
/* Frees a loop whose thread has exited. */
void seda__loop_destroy(struct seda__loop *l);
/* The shared thread's body: runs until the runtime stops. */
void seda__loop_run(struct seda__loop *l);

#endif /* SEDA_LOOP_H */
