/*
 * The worker loop of a shared thread (loop.h; docs/design/io.md section 1):
 * stages first (the run-next slot, the stages bound to this thread, the
 * runtime's run queue), posted work, the loop's own timers, output flushed
 * before each poll, and the poller, where the thread waits when it has
 * nothing to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "loop.h"
#include "runtime_internal.h"

/* Consecutive "run next" turns before the slot goes to a run queue, so a
 * chain of stages cannot keep one thread to itself. */
#define NEXT_RUNS_MAX 8
/* While stages keep the loop busy, it still polls its descriptors (without
 * blocking) every this many turns, so I/O is never starved by a long chain. */
#define POLL_EVERY_TURNS 16
/* Empty looks at the run queues before a loop with no descriptor to watch
 * sleeps (~20-50 us of PAUSEs): waking a thread costs more than that. A loop
 * that watches descriptors sleeps at once (its poller reports I/O that
 * arrives meanwhile; spinning would only delay it). */
#define IDLE_SPINS 512
/* Readiness events taken per poll. */
#define EVENTS_MAX 256

static _Thread_local struct seda__loop *tls_loop;

struct seda__loop *seda__loop_current(void)
{
    return tls_loop;
}

struct seda__loop *seda__loop_of(seda_runtime_t *rt, uint32_t i)
{
    return i < rt->cpu_threads ? rt->workers[i]->loop : NULL;
}

static inline void count(_Atomic uint64_t *c, uint64_t by)
{
    /* Only the owner writes: load + store, read relaxed by statistics. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/* ---- waking ------------------------------------------------------------------ */

static void wake_write(struct seda__loop *l)
{
    uint64_t one = 1;
    /* Non-blocking eventfd: a full counter (2^64 - 2 unread wakes) cannot
     * happen, one write per sleep at most. */
    (void)!write(l->wake_fd, &one, sizeof one);
    atomic_fetch_add_explicit(&l->wakeups, 1, memory_order_relaxed);
}

void seda__loop_wake(struct seda__loop *l)
{
    /* seq_cst load after the caller's seq_cst publication; pairs with the
     * seq_cst store of `sleeping` before the loop's last look (loop.h). */
    if (SEDA__LIKELY(atomic_load_explicit(&l->sleeping, memory_order_seq_cst) == 0))
        return;
    /* One waker per sleep writes; the others see 0. */
    if (atomic_exchange_explicit(&l->sleeping, 0, memory_order_seq_cst) == 1)
        wake_write(l);
}

void seda__loop_wake_any(seda_runtime_t *rt)
{
    uint32_t n = rt->cpu_threads;
    if (n == 0)
        return;
    /* Start after the caller's own loop, so that wakes spread. */
    struct seda__loop *self = tls_loop;
    uint32_t start = self && self->rt == rt ? self->index + 1 : 0;
    for (uint32_t k = 0; k < n; k++) {
        struct seda__loop *l = rt->workers[(start + k) % n]->loop;
        if (l == self)
            continue;
        if (atomic_load_explicit(&l->sleeping, memory_order_seq_cst) != 0 &&
            atomic_exchange_explicit(&l->sleeping, 0, memory_order_seq_cst) == 1) {
            wake_write(l);
            return;
        }
    }
}

/* ---- posted and deferred work -------------------------------------------------- */

/* The inbox of a loop that has exited. */
#define INBOX_CLOSED ((struct seda__task *)(uintptr_t)1)

bool seda__loop_post(struct seda__loop *l, struct seda__task *t)
{
    struct seda__task *head = atomic_load_explicit(&l->inbox, memory_order_acquire);
    do {
        /* Acquire (the load and the CAS's failure): a poster that finds the
         * inbox closed sees everything the loop did before closing it. */
        if (head == INBOX_CLOSED)
            return false;
        t->next = head;
        /* seq_cst: publishes the task (pairs with the loop's acquire exchange)
         * and is the publication RMW of the idle protocol (loop.h). */
    } while (!atomic_compare_exchange_weak_explicit(&l->inbox, &head, t, memory_order_seq_cst,
                                                    memory_order_acquire));
    if (tls_loop != l)
        seda__loop_wake(l);
    return true;
}

/* Runs everything posted so far, oldest first. Returns whether there was any. */
static bool run_inbox(struct seda__loop *l)
{
    if (atomic_load_explicit(&l->inbox, memory_order_relaxed) == NULL)
        return false;
    /* Acquire: pairs with the posters' CAS; their tasks' fields are visible. */
    struct seda__task *t = atomic_exchange_explicit(&l->inbox, NULL, memory_order_acquire);
    struct seda__task *fifo = NULL;
    uint64_t n = 0;
    while (t) { /* the stack is newest first: reverse it */
        struct seda__task *next = t->next;
        t->next = fifo;
        fifo = t;
        t = next;
        n++;
    }
    while (fifo) {
        struct seda__task *next = fifo->next;
        fifo->run(l, fifo);
        fifo = next;
    }
    count(&l->tasks, n);
    return true;
}

void seda__loop_defer(struct seda__loop *l, struct seda__task *t)
{
    t->next = NULL;
    *l->deferred_tail = t;
    l->deferred_tail = &t->next;
}

/* Runs the deferred work (flushes). Work deferred meanwhile runs too. */
static bool run_deferred(struct seda__loop *l)
{
    if (!l->deferred)
        return false;
    while (l->deferred) {
        struct seda__task *t = l->deferred;
        l->deferred = t->next;
        if (!l->deferred)
            l->deferred_tail = &l->deferred;
        t->run(l, t);
    }
    return true;
}

void seda__loop_at_exit(struct seda__loop *l, struct seda__task *t)
{
    t->next = l->at_exit;
    l->at_exit = t;
}

void seda__loop_cancel_at_exit(struct seda__loop *l, struct seda__task *t)
{
    for (struct seda__task **p = &l->at_exit; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            return;
        }
    }
}

bool seda__loop_all_exited(const seda_runtime_t *rt)
{
    /* Acquire: pairs with the seq_cst store of STOPPED made after every
     * shared thread was joined (shutdown.c); DONE comes later. */
    return atomic_load_explicit(&rt->state, memory_order_acquire) >= SEDA__RT_STOPPED;
}

/* At exit: each registered task once (a task may cancel others). */
static void run_at_exit(struct seda__loop *l)
{
    while (l->at_exit) {
        struct seda__task *t = l->at_exit;
        l->at_exit = t->next;
        t->run(l, t);
    }
}

/* ---- descriptors ----------------------------------------------------------------- */

int seda__loop_watch(struct seda__loop *l, struct seda__watcher *w, uint32_t events)
{
    int r = seda_poller_add(l->poller, w->fd, events, w);
    if (r == 0)
        l->watchers++;
    return r;
}

int seda__loop_rewatch(struct seda__loop *l, struct seda__watcher *w, uint32_t events)
{
    return seda_poller_mod(l->poller, w->fd, events, w);
}

int seda__loop_unwatch(struct seda__loop *l, struct seda__watcher *w)
{
    int r = seda_poller_del(l->poller, w->fd);
    if (r == 0)
        l->watchers--;
    return r;
}

/* io_uring completions, during seda_poller_wait: to the watcher given as udata. */
static void on_completion(void *ctx, const struct seda__poller_completion *c)
{
    struct seda__loop *l = ctx;
    atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed); /* awake: spare wakers a write */
    struct seda__watcher *w = c->udata;
    w->on_complete(l, w, c);
    count(&l->poll_events, 1);
}

/* Waits in the poller for at most timeout_ns and handles what it reports.
 * Returns the number of events (completions are counted in poll_events). */
static int poll_io(struct seda__loop *l, int64_t timeout_ns)
{
    seda_poller_event_t ev[EVENTS_MAX];
    l->waits++; /* before: io_uring completions are handled inside the wait */
    int n = seda__poller_wait_once(l->poller, ev, EVENTS_MAX, timeout_ns);
    atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
    count(&l->polls, 1);
    if (n > 0)
        count(&l->poll_events, (uint64_t)n);
    for (int i = 0; i < n; i++) { /* n < 0: a timeout, or -EINTR */
        struct seda__watcher *w = ev[i].udata;
        if (w == NULL) { /* the wake eventfd: one read resets its counter */
            uint64_t v;
            (void)!read(l->wake_fd, &v, sizeof v);
            continue;
        }
        w->on_ready(l, w, ev[i].events);
    }
    if (l->io_poll)
        l->io_poll(l);
    return n > 0 ? n : 0;
}

/* ---- timers ------------------------------------------------------------------------ */

/* The wheel's deliver function: target is the loop, event the timer. */
static int timer_deliver(void *target, void *event)
{
    struct seda__loop_timer *t = event;
    t->id = 0;
    t->fire(target, t, false);
    return 0;
}

/* Never called: timer_deliver always succeeds. */
static void timer_undeliverable(void *ctx, void *target, void *event, int code)
{
    (void)ctx;
    (void)code;
    timer_deliver(target, event);
}

/* The loop goes away with t pending. */
static void timer_hand_back(void *ctx, void *target, void *event)
{
    (void)ctx;
    struct seda__loop_timer *t = event;
    t->id = 0;
    t->fire(target, t, true);
}

int seda__loop_timer_start(struct seda__loop *l, struct seda__loop_timer *t, int64_t deadline_ns)
{
    seda__loop_timer_stop(l, t);
    int r = seda_timers_add_at(l->timers, deadline_ns, timer_deliver, l, t, &t->id);
    if (r == 0 && deadline_ns < l->timer_due)
        l->timer_due = deadline_ns;
    return r;
}

void seda__loop_timer_stop(struct seda__loop *l, struct seda__loop_timer *t)
{
    if (t->id == 0)
        return;
    /* On the owner thread no poll is running: never -EBUSY. */
    seda_timers_cancel(l->timers, t->id, NULL);
    t->id = 0;
}

static void fire_timers(struct seda__loop *l, int64_t now)
{
    int64_t ns = seda_timers_poll(l->timers);
    if (ns < 0)
        l->timer_due = INT64_MAX;
    else
        l->timer_due = ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

/* ---- the loop --------------------------------------------------------------------- */

/* Anything to run? seq_cst loads: the second look of the idle protocol. */
static bool work_available(struct seda__loop *l)
{
    return l->worker->next || atomic_load_explicit(&l->inbox, memory_order_seq_cst) != NULL ||
           seda_queue_size(l->local) > 0 || seda_queue_size(l->rt->run_queue) > 0 ||
           seda_queue_is_closed(l->rt->run_queue);
}

/* Takes the next stage instance to run: bound stages first, then the run
 * queue. NULL when both are empty; *closed when the run queue is closed and
 * drained (shutdown). */
static seda_stage_t *next_stage(struct seda__loop *l, bool *closed)
{
    void *item;
    if (seda_queue_dequeue(l->local, &item) == 0)
        return item;
    int r = seda_queue_dequeue(l->rt->run_queue, &item);
    if (r == 0)
        return item;
    *closed = r == -EPIPE;
    return NULL;
}

/* Nothing to run: spin a little if no descriptor is watched, then sleep in
 * the poller until I/O, a wake or the next timer. */
static void idle_wait(struct seda__loop *l)
{
    if (l->io_more) { /* input waits for its turn: poll, but do not block */
        poll_io(l, 0);
        return;
    }
    if (l->watchers == 0) {
        for (unsigned spin = 0; spin < IDLE_SPINS; spin++) {
            if (work_available(l))
                return;
            /* Mostly PAUSE; now and then let a thread waiting for this CPU
             * (a producer, on an oversubscribed machine) run instead. */
            if (spin % 64 == 63)
                sched_yield();
            else
                seda__cpu_relax();
        }
    }
    /* seq_cst store, then the seq_cst loads of work_available: loop.h. */
    atomic_store_explicit(&l->sleeping, 1, memory_order_seq_cst);
    if (work_available(l)) {
        atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
        return;
    }
    int64_t timeout = -1;
    if (l->timer_due != INT64_MAX) {
        int64_t now = seda_clock_now(l->rt->clock);
        timeout = l->timer_due > now ? l->timer_due - now : 0;
        /* A manual clock moves without telling anyone: look every tick. */
        if (l->rt->clock != seda_clock_monotonic() && timeout > 1000000)
            timeout = 1000000;
    }
    count(&l->sleeps, 1);
    poll_io(l, timeout);
}

/* idle_wait, counted in the runtime's idle_threads meanwhile: a busy thread
 * hands its run-next slot to the run queue while some thread idles
 * (seda__run_turn). Relaxed both ways: a hint. */
static void idle(struct seda__loop *l)
{
    atomic_fetch_add_explicit(&l->rt->idle_threads, 1, memory_order_relaxed);
    idle_wait(l);
    atomic_fetch_sub_explicit(&l->rt->idle_threads, 1, memory_order_relaxed);
}

void seda__loop_run(struct seda__loop *l)
{
    struct seda__worker *w = l->worker;
    tls_loop = l;
    unsigned next_runs = 0, turns = 0;
    for (;;) {
        if (w->next) {
            seda_stage_t *s = w->next;
            w->next = NULL;
            if (++next_runs <= NEXT_RUNS_MAX) {
                seda__run_turn(w, s);
                count(&l->turns, 1);
                turns++;
                continue;
            }
            seda__push_stage(s, false); /* enough: to the back of the line */
        }
        next_runs = 0;
        w->last_end = 0; /* between turns: the next batch reads the clock */
        run_inbox(l);
        if (l->timer_due != INT64_MAX) {
            int64_t now = seda__clock_now_fast(l->rt->clock);
            if (now >= l->timer_due)
                fire_timers(l, now);
        }
        if (turns >= POLL_EVERY_TURNS) {
            turns = 0;
            run_deferred(l);
            if (l->watchers)
                poll_io(l, 0);
            continue;
        }
        bool closed = false;
        seda_stage_t *s = next_stage(l, &closed);
        if (s) {
            seda__run_turn(w, s);
            count(&l->turns, 1);
            turns++;
            continue;
        }
        turns = 0;
        /* Nothing to run: flush first (it may make work: writability events). */
        if (run_deferred(l) || w->next || atomic_load(&l->inbox))
            continue;
        if (closed && seda_queue_size(l->local) == 0)
            break; /* the runtime stops, and nothing is left here */
        idle(l);
    }
    l->exiting = true;
    if (l->io_stop)
        l->io_stop(l);
    run_at_exit(l);
    /* Run what was posted, then close the inbox: posts from now on fail.
     * The exchange is release: a poster that finds the inbox closed sees
     * everything this thread did. */
    for (;;) {
        run_inbox(l);
        run_deferred(l);
        struct seda__task *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&l->inbox, &none, INBOX_CLOSED,
                                                    memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    tls_loop = NULL;
}

/* ---- creation ------------------------------------------------------------------- */

static void poller_log(void *ctx, const char *message)
{
    seda__log(ctx, SEDA_LOG_WARNING, NULL, "%s", message);
}

int seda__loop_create(struct seda__worker *w, const seda_runtime_options_t *o,
                      struct seda__loop **out)
{
    seda_runtime_t *rt = w->rt;
    struct seda__loop *l = seda__alloc_aligned(sizeof *l);
    if (!l)
        return -ENOMEM;
    l->rt = rt;
    l->worker = w;
    l->index = w->index;
    l->wake_fd = -1;
    l->deferred_tail = &l->deferred;
    l->timer_due = INT64_MAX;
    int r = seda_queue_create(&l->local, rt->run_queue_capacity, NULL);
    if (r < 0)
        goto fail;
    r = seda_timers_create(&l->timers, rt->clock, 0, timer_undeliverable, l);
    if (r < 0)
        goto fail;
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0) {
        r = -errno;
        goto fail;
    }
    seda_poller_options_t po = { 0 };
    po.uring_entries = o ? o->uring_entries : 0;
    po.log = poller_log; /* the io_uring fallback warning, through the runtime's hook */
    po.log_ctx = rt;
    r = seda_poller_create(&l->poller, o ? o->poller : SEDA_POLLER_DEFAULT, &po);
    if (r < 0)
        goto fail;
    l->trigger = seda_poller_trigger(l->poller);
    r = seda_poller_add(l->poller, l->wake_fd, SEDA_POLLER_IN, NULL);
    if (r < 0)
        goto fail;
    l->completion = seda__poller_completion(l->poller);
    if (l->completion)
        l->completion->set_handler(l->poller, on_completion, l);
    *out = l;
    return 0;
fail:
    seda__loop_destroy(l);
    return r;
}

void seda__loop_destroy(struct seda__loop *l)
{
    if (!l)
        return;
    seda_poller_destroy(l->poller);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    if (l->timers)
        seda_timers_destroy(l->timers, timer_hand_back, l);
    if (l->local) {
        /* Instances left by a shutdown: each holds a reference. */
        void *item;
        while (seda_queue_dequeue(l->local, &item) == 0) {
            seda_stage_t *s = item;
            atomic_fetch_sub(&s->active, 1);
            seda_stage_release(s);
        }
        seda_queue_destroy(l->local, NULL, NULL);
    }
    free(l);
}

/* ---- statistics ---------------------------------------------------------------------- */

int seda_runtime_loop_stats(const seda_runtime_t *rt, uint32_t i, seda_loop_stats_t *out)
{
    if (!rt || !out || i >= rt->cpu_threads)
        return -EINVAL;
    const struct seda__loop *l = rt->workers[i]->loop;
    out->polls = atomic_load_explicit(&l->polls, memory_order_relaxed);
    out->poll_events = atomic_load_explicit(&l->poll_events, memory_order_relaxed);
    out->sleeps = atomic_load_explicit(&l->sleeps, memory_order_relaxed);
    out->wakeups = atomic_load_explicit(&l->wakeups, memory_order_relaxed);
    out->tasks = atomic_load_explicit(&l->tasks, memory_order_relaxed);
    out->turns = atomic_load_explicit(&l->turns, memory_order_relaxed);
    return 0;
}
