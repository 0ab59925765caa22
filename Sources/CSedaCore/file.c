/*
 * The file stage (include/seda/file.h): engine choice, the home worker, the
 * submission side, the completion side, and the stage's life.
 *
 * Two stages of the runtime and one worker loop make a file stage:
 *
 *  "<name>"       shared threads, bound to the stage's home worker (io_uring
 *                 and libaio only). Its handler gets a batch of requests and
 *                 prepares them all into the engine, then submits them with
 *                 one call (io_uring_enter, io_submit): submissions are
 *                 batched per stage batch. Requests beyond the engine's
 *                 depth wait in a backlog, in order.
 *  the home loop  the same worker's loop watches the engine's completion
 *                 fd (a seda__watcher): on readiness it reaps and delivers
 *                 every completion, then moves the backlog into the room
 *                 they freed (on_completions). A loop timer (the tick,
 *                 every millisecond while needed) retries completions whose
 *                 sink was full and flushes the kernel refused. Submitter
 *                 and reaper being one thread, neither side needs a lock or
 *                 a fence against the other.
 *  "<name>.pool"  the threads engine (file_threads.c): open and close for
 *                 every engine, every request on the threads engine, and
 *                 files whose file system refuses the O_DIRECT libaio needs.
 *
 * Life on the home loop: attach (posted at create, or done by the first
 * submission handler call, whichever runs first) starts the engine on that
 * thread, watches the fd and registers an exit task; destroy posts detach,
 * which cancels the backlog and waits (without blocking the loop) until the
 * kernel holds nothing, then unwatches; if the runtime stops first, the exit
 * task finishes what the kernel holds on that thread before it goes.
 *
 * Completions are delivered by whoever learns the result: the home loop, a
 * pool thread, or the submission handler for a request that fails before
 * reaching the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_internal.h"

#define NAME_MAX_BYTES 40
#define DEFAULT_DEPTH 256
#define MAX_DEPTH 4096
#define DEFAULT_MAX_PENDING 4096
#define DEFAULT_ARENA ((size_t)16 << 20)
#define SUBMIT_BATCH 64
/* The tick's period: how soon a completion parked on a full sink is tried
 * again, and a refused flush retried. */
#define TICK_NS INT64_C(1000000)
/* How long destroy waits for a full sink to take a parked completion. */
#define DESTROY_DELIVERY_WAIT_NS (INT64_C(5) * 1000000000)

/* ---- names --------------------------------------------------------------- */

const char *seda_disk_engine_name(int engine)
{
    switch (engine) {
    case SEDA_DISK_DEFAULT: return "default";
    case SEDA_DISK_IO_URING: return "io_uring";
    case SEDA_DISK_LIBAIO: return "libaio";
    case SEDA_DISK_THREADS: return "threads";
    default: return NULL;
    }
}

int seda_disk_engine_parse(const char *name)
{
    if (!name)
        return -EINVAL;
    for (int e = SEDA_DISK_DEFAULT; e <= SEDA_DISK_THREADS; e++)
        if (strcmp(name, seda_disk_engine_name(e)) == 0)
            return e;
    return -EINVAL;
}

static const struct seda__file_engine_ops *ops_for(int engine)
{
    switch (engine) {
    case SEDA_DISK_IO_URING: return &seda__file_uring_ops;
    case SEDA_DISK_LIBAIO: return &seda__file_libaio_ops;
    default: return &seda__file_threads_ops;
    }
}

/* ---- the stage's memory -------------------------------------------------- */

void seda__file_stage_unref(struct seda_file_stage *fs)
{
    /* acq_rel: the last holder sees every other holder's writes before it
     * frees. Pairs with itself and with the increment in req_new. */
    if (atomic_fetch_sub_explicit(&fs->refs, 1, memory_order_acq_rel) != 1)
        return;
    seda__file_buffers_fini(&fs->buffers);
    pthread_mutex_destroy(&fs->retry_lock);
    pthread_mutex_destroy(&fs->files_lock);
    pthread_mutex_destroy(&fs->fault_lock);
    free(fs);
}

/* ---- the submission side (home worker) ----------------------------------- */

static void backlog_append(struct seda_file_stage *fs, seda__file_req_t *r)
{
    r->next = NULL;
    if (fs->backlog_tail)
        fs->backlog_tail->next = r;
    else
        fs->backlog_head = r;
    fs->backlog_tail = r;
}

/* in_kernel is written on the home worker only: a load and a store. */
static inline void in_kernel_add(struct seda_file_stage *fs, int64_t by)
{
    atomic_store_explicit(&fs->in_kernel,
                          atomic_load_explicit(&fs->in_kernel, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/* Prepares one request: 1 if the engine took it, 0 if it completed here
 * (closing, fault, refused) or waits (-EAGAIN: *full set; the caller keeps it). */
static int prep_one(struct seda_file_stage *fs, seda__file_req_t *r, bool *full)
{
    if (!r->prechecked && !seda__file_precheck(r))
        return 0;
    int e = fs->ops->prep(fs->engine, r);
    if (e == 0) {
        in_kernel_add(fs, 1);
        return 1;
    }
    if (e == -EAGAIN) {
        *full = true;
        return 0;
    }
    seda__file_complete(r, e);
    return 0;
}

/* Moves what fits from the backlog into the engine; returns how many. */
static int submit_backlog(struct seda_file_stage *fs)
{
    int prepped = 0;
    while (fs->backlog_head) {
        seda__file_req_t *r = fs->backlog_head;
        bool full = false;
        fs->backlog_head = r->next;
        if (!fs->backlog_head)
            fs->backlog_tail = NULL;
        prepped += prep_one(fs, r, &full);
        if (full) { /* back to the front */
            r->next = fs->backlog_head;
            fs->backlog_head = r;
            if (!fs->backlog_tail)
                fs->backlog_tail = r;
            break;
        }
    }
    return prepped;
}

static void start_tick(struct seda_file_stage *fs);

static void flush(struct seda_file_stage *fs, int prepped)
{
    if (prepped == 0 && !fs->flush_failed)
        return;
    int e = fs->ops->flush(fs->engine);
    if (e > 0) /* 0: nothing was prepared (a close with nothing to cancel) */
        atomic_fetch_add_explicit(&fs->submit_calls, 1, memory_order_relaxed);
    if (e < 0) {
        /* The kernel is short of something (-EAGAIN, -ENOMEM): the requests
         * stay prepared; the tick tries again. */
        if (!fs->flush_failed)
            seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                           "file stage %s: submission failed (%s); retrying", fs->name,
                           strerror(-e));
        fs->flush_failed = true;
        start_tick(fs);
    } else {
        fs->flush_failed = false;
        if (fs->watch_failed && e > 0)
            start_tick(fs); /* nobody else will reap them */
    }
}

/* Completes every backlog request of f (NULL: all) with -ECANCELED. */
static void cancel_backlog(struct seda_file_stage *fs, seda_file_t *f)
{
    seda__file_req_t **pp = &fs->backlog_head, *last = NULL;
    while (*pp) {
        seda__file_req_t *r = *pp;
        if (!f || r->ev.file == f) {
            *pp = r->next;
            seda__file_complete(r, -ECANCELED);
        } else {
            last = r;
            pp = &r->next;
        }
    }
    fs->backlog_tail = last;
}

/* A CLOSE taken by its route (the submission handler, the pool, or a drop
 * callback: then `handing_back`, and the backlog and the kernel are left to
 * the home worker's detach or exit task, since the handler may still run). */
static void close_step(seda__file_req_t *r, bool handing_back)
{
    struct seda_file_stage *fs = r->fs;
    seda_file_t *f = r->ev.file;
    atomic_store_explicit(&f->closing, true, memory_order_release);
    if (!handing_back && !f->ops->any_thread) {
        cancel_backlog(fs, f);
        /* Requests of f in the kernel hold references beyond the open one. */
        if (f->ops->cancel_fd && atomic_load_explicit(&f->refs, memory_order_acquire) > 1)
            f->ops->cancel_fd(f->engine, f->fd);
    }
    f->close_req = r;
    seda__file_unref(f); /* the open reference */
}

void seda__file_do_close(seda__file_req_t *r)
{
    close_step(r, false);
}

static void attach(struct seda_file_stage *fs, struct seda__loop *l);

static int submit_handler(void *ctx, void **events, size_t count)
{
    struct seda_file_stage *fs = ctx;
    if (SEDA__UNLIKELY(!fs->attached))
        attach(fs, fs->home); /* bound: this is the home worker */
    int prepped = submit_backlog(fs);
    for (size_t i = 0; i < count; i++) {
        seda__file_req_t *r = events[i];
        if (r->ev.op == SEDA_FILE_CLOSE) {
            close_step(r, false);
            prepped++; /* a cancel may have been prepared: flush */
            continue;
        }
        if (fs->backlog_head) { /* keep the order */
            backlog_append(fs, r);
            continue;
        }
        bool full = false;
        prepped += prep_one(fs, r, &full);
        if (full)
            backlog_append(fs, r);
    }
    flush(fs, prepped);
    return 0;
}

static void submit_drop(void *ctx, void *event)
{
    (void)ctx;
    seda__file_req_t *r = event;
    if (r->ev.op == SEDA_FILE_CLOSE)
        close_step(r, true);
    else
        seda__file_complete(r, -ECANCELED);
}

/* ---- the completion side (home worker) ----------------------------------- */

static void finish_detach(struct seda_file_stage *fs);
static void signal_detached(struct seda_file_stage *fs);

/* Reaps and delivers every completion ready, then lets the backlog into the
 * room they made. */
static void reap_all(struct seda_file_stage *fs)
{
    if (!fs->ops->reap)
        return;
    size_t n = fs->ops->reap(fs->engine);
    atomic_fetch_add_explicit(&fs->reap_calls, 1, memory_order_relaxed);
    if (n && fs->backlog_head)
        flush(fs, submit_backlog(fs));
    if (fs->stopping)
        finish_detach(fs);
}

/* The completion fd is readable. */
static void on_completions(struct seda__loop *l, struct seda__watcher *w, uint32_t events)
{
    (void)l, (void)events;
    struct seda_file_stage *fs =
        (struct seda_file_stage *)((char *)w - offsetof(struct seda_file_stage, watcher));
    reap_all(fs);
}

/* Whether the tick has work: completions parked, a flush owed, or (the fd
 * not watched) the kernel holding requests. */
static bool tick_needed(struct seda_file_stage *fs)
{
    return atomic_load(&fs->retry_count) > 0 || fs->flush_failed ||
           (fs->watch_failed && atomic_load_explicit(&fs->in_kernel, memory_order_relaxed) > 0);
}

static void tick_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled)
{
    struct seda_file_stage *fs =
        (struct seda_file_stage *)((char *)t - offsetof(struct seda_file_stage, tick));
    if (cancelled) /* never: the exit task stops the tick first */
        return;
    if (fs->flush_failed)
        flush(fs, 0);
    if (fs->watch_failed)
        reap_all(fs);
    seda__file_retry_parked(fs);
    if (fs->stopping)
        finish_detach(fs);
    if (fs->detached)
        return;
    if (!tick_needed(fs)) {
        /* seq_cst store, then the seq_cst load of retry_count in
         * tick_needed: pairs with seda__file_arm_tick (a raise of
         * retry_count, then a load of tick_armed). Either this tick sees
         * the completion parked, or the parker sees the tick disarmed. */
        atomic_store(&fs->tick_armed, false);
        if (!tick_needed(fs) || atomic_exchange(&fs->tick_armed, true))
            return;
    }
    int64_t now = seda_clock_now(seda_runtime_clock(fs->rt));
    seda__loop_timer_start(l, t, now > INT64_MAX - TICK_NS ? INT64_MAX : now + TICK_NS);
}

/* On the home worker: runs the tick a millisecond from now (unless it is
 * running already). */
static void start_tick(struct seda_file_stage *fs)
{
    atomic_store(&fs->tick_armed, true);
    if (fs->tick.id == 0 && !fs->detached) {
        int64_t now = seda_clock_now(seda_runtime_clock(fs->rt));
        seda__loop_timer_start(fs->home, &fs->tick,
                               now > INT64_MAX - TICK_NS ? INT64_MAX : now + TICK_NS);
    }
}

/* arm_task, on the home worker. */
static void arm_run(struct seda__loop *l, struct seda__task *t)
{
    struct seda_file_stage *fs =
        (struct seda_file_stage *)((char *)t - offsetof(struct seda_file_stage, arm_task));
    /* Before anything else: a park from now on may post the task again. */
    atomic_store(&fs->arm_posted, false);
    if (fs->detached) {
        if (fs->stopping) /* destroy waits: the task is off the inbox now */
            signal_detached(fs);
        return;
    }
    attach(fs, l);
    start_tick(fs);
}

void seda__file_arm_tick(struct seda_file_stage *fs)
{
    /* seq_cst load and exchange, after the caller's seq_cst raise of
     * retry_count: pairs with the tick's store of false and its load of
     * retry_count (tick_fire). */
    if (atomic_load(&fs->tick_armed) || atomic_exchange(&fs->tick_armed, true))
        return;
    /* Acquire: pairs with destroy's release store. Once set, the home loop
     * may be gone or about to free nothing of ours: post nothing; destroy
     * delivers what is parked. */
    if (atomic_load_explicit(&fs->no_posts, memory_order_acquire))
        return;
    /* One post in flight at a time (the task is one node): if one is
     * queued, it has not started yet and will start the tick after this
     * park. On the home worker itself, the post runs at its next turn. */
    if (!atomic_exchange(&fs->arm_posted, true))
        seda__loop_post(fs->home, &fs->arm_task);
}

/* ---- the home loop: attach, detach, exit --------------------------------- */

/* On the home worker: starts the engine there and watches its fd. Once. */
static void attach(struct seda_file_stage *fs, struct seda__loop *l)
{
    if (fs->attached || fs->detached)
        return;
    fs->attached = true;
    if (fs->ops->start) {
        int e = fs->ops->start(fs->engine);
        if (e < 0) /* the stage then fails its requests with the error */
            seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                           "file stage %s: the %s engine did not start (%s)", fs->name,
                           seda_disk_engine_name(fs->ops->kind), strerror(-e));
    }
    fs->watcher.fd = fs->ops->completion_fd ? fs->ops->completion_fd(fs->engine) : -1;
    if (fs->watcher.fd >= 0) {
        int e = seda__loop_watch(l, &fs->watcher, SEDA_POLLER_IN);
        if (e < 0) {
            fs->watch_failed = true;
            seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                           "file stage %s: the loop cannot watch its completions (%s); reaping "
                           "every millisecond",
                           fs->name, strerror(-e));
        }
    }
    seda__loop_at_exit(l, &fs->exit_task);
}

static void attach_run(struct seda__loop *l, struct seda__task *t)
{
    attach((struct seda_file_stage *)((char *)t - offsetof(struct seda_file_stage, attach_task)),
           l);
}

/* Leaves the home loop for good: nothing of ours is watched, timed or
 * registered there afterwards. */
static void detach_now(struct seda_file_stage *fs)
{
    if (fs->attached) {
        if (fs->watcher.fd >= 0 && !fs->watch_failed)
            seda__loop_unwatch(fs->home, &fs->watcher);
        seda__loop_timer_stop(fs->home, &fs->tick);
        seda__loop_cancel_at_exit(fs->home, &fs->exit_task);
    }
    fs->attached = false;
    fs->detached = true;
}

/* Tells destroy the home loop is done with the stage, unless arm_task is
 * still in the loop's inbox (posted by this thread before it ran detach):
 * then arm_run tells it, once the task (memory of the stage) is off the
 * inbox. Only the home worker posts arm_task by then (destroy stopped the
 * pool first, and no_posts stops the rest). */
static void signal_detached(struct seda_file_stage *fs)
{
    if (atomic_load(&fs->arm_posted))
        return;
    /* Release: destroy (acquire) sees everything this thread did to the
     * stage, and this thread touches it no more. */
    atomic_store_explicit(&fs->detach_done, true, memory_order_release);
}

/* Stopping: detaches once the kernel holds nothing and nothing waits to be
 * flushed; tells destroy. */
static void finish_detach(struct seda_file_stage *fs)
{
    if (fs->detached || fs->flush_failed ||
        atomic_load_explicit(&fs->in_kernel, memory_order_relaxed) > 0)
        return;
    detach_now(fs);
    signal_detached(fs);
}

/* detach_task (destroy): the submission stage is gone; cancel what waits
 * for room, and detach once the kernel has given back the rest. */
static void detach_run(struct seda__loop *l, struct seda__task *t)
{
    struct seda_file_stage *fs =
        (struct seda_file_stage *)((char *)t - offsetof(struct seda_file_stage, detach_task));
    (void)l;
    fs->stopping = true;
    cancel_backlog(fs, NULL);
    if (fs->detached) { /* the exit task came first */
        signal_detached(fs);
        return;
    }
    if (fs->flush_failed)
        flush(fs, 0);
    if (fs->watch_failed && atomic_load_explicit(&fs->in_kernel, memory_order_relaxed) > 0)
        start_tick(fs);
    finish_detach(fs);
}

/* Blocks until the engine's completion fd is readable (100 ms at most). */
static void wait_completions(struct seda_file_stage *fs)
{
    struct pollfd p = { .fd = fs->ops->completion_fd(fs->engine), .events = POLLIN };
    poll(&p, 1, 100);
}

/* exit_task: the loop exits (the runtime stops) with the stage attached.
 * Requests not yet in the kernel are cancelled; those in it are waited for
 * here, on the only thread that may enter the ring (SINGLE_ISSUER; with
 * DEFER_TASKRUN also the only one whose entering completes them); their
 * completions meet closed sinks and go to undeliverable. */
static void exit_run(struct seda__loop *l, struct seda__task *t)
{
    struct seda_file_stage *fs =
        (struct seda_file_stage *)((char *)t - offsetof(struct seda_file_stage, exit_task));
    (void)l;
    cancel_backlog(fs, NULL);
    while (fs->flush_failed) {
        flush(fs, 0);
        if (fs->flush_failed)
            poll(NULL, 0, 1);
    }
    while (atomic_load_explicit(&fs->in_kernel, memory_order_relaxed) > 0) {
        wait_completions(fs);
        reap_all(fs); /* stopping: detaches once the kernel is done */
    }
    if (!fs->detached)
        detach_now(fs);
    if (fs->stopping) /* detach_task ran: destroy waits for this */
        signal_detached(fs);
}

/* ---- create / destroy ---------------------------------------------------- */

static int make_stage(struct seda_file_stage *fs, seda_stage_t **out)
{
    seda_stage_options_t so = {
        .name = fs->name,
        .queue_capacity = fs->opts.max_pending,
        .batch_max = SUBMIT_BATCH,
        .thread_manager = SEDA_THREADS_SHARED,
        .concurrency = 1,
        .bind_to_thread = 1,
        .thread_index = fs->home_index,
        .handler = submit_handler,
        .drop = submit_drop,
        .ctx = fs,
    };
    return seda_stage_create(fs->rt, &so, out);
}

/* The engine asked for: the option, else SEDA_DISK, else io_uring. */
static int requested_engine(struct seda_file_stage *fs)
{
    int engine = fs->opts.engine;
    if (engine == SEDA_DISK_DEFAULT) {
        const char *env = getenv("SEDA_DISK");
        if (env && *env) {
            int e = seda_disk_engine_parse(env);
            if (e < 0)
                seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                               "SEDA_DISK=%s is not io_uring, libaio or threads; using the default",
                               env);
            else
                engine = e;
        }
    }
    return engine == SEDA_DISK_DEFAULT ? SEDA_DISK_IO_URING : engine;
}

/* Tears down what create built, in the order destroy uses. */
static void teardown(struct seda_file_stage *fs);

int seda_file_stage_create(seda_runtime_t *rt, const seda_file_stage_options_t *opts,
                           seda_file_stage_t **out)
{
    if (!rt || !opts || !out || !opts->name || !*opts->name ||
        strlen(opts->name) > NAME_MAX_BYTES || opts->queue_depth > MAX_DEPTH ||
        opts->engine < SEDA_DISK_DEFAULT || opts->engine > SEDA_DISK_THREADS ||
        (opts->max_threads && opts->max_threads < opts->threads) ||
        (opts->bind_to_thread && opts->thread_index >= seda_runtime_cpu_threads(rt)))
        return -EINVAL;
    struct seda_file_stage *fs = calloc(1, sizeof *fs);
    if (!fs)
        return -ENOMEM;
    fs->rt = rt;
    strcpy(fs->name, opts->name);
    fs->opts = *opts;
    fs->opts.name = fs->name;
    if (!fs->opts.queue_depth)
        fs->opts.queue_depth = DEFAULT_DEPTH;
    if (!fs->opts.max_pending)
        fs->opts.max_pending = DEFAULT_MAX_PENDING;
    fs->home_index = opts->bind_to_thread ? opts->thread_index : seda__runtime_spread_thread(rt);
    fs->home = seda__loop_of(rt, fs->home_index);
    fs->watcher.on_ready = on_completions;
    fs->watcher.fd = -1;
    fs->tick.fire = tick_fire;
    fs->attach_task.run = attach_run;
    fs->arm_task.run = arm_run;
    fs->detach_task.run = detach_run;
    fs->exit_task.run = exit_run;
    pthread_mutex_init(&fs->retry_lock, NULL);
    pthread_mutex_init(&fs->files_lock, NULL);
    pthread_mutex_init(&fs->fault_lock, NULL);
    atomic_init(&fs->refs, 1);

    int engine = requested_engine(fs);
    if (!fs->opts.threads)
        fs->opts.threads = engine == SEDA_DISK_THREADS ? 4 : 1;
    if (!fs->opts.max_threads)
        fs->opts.max_threads = fs->opts.threads > 64 ? fs->opts.threads : 64;

    int e = seda__file_buffers_init(&fs->buffers, opts->buffer_pool_bytes ? opts->buffer_pool_bytes
                                                                          : DEFAULT_ARENA);
    if (e < 0) {
        seda__file_stage_unref(fs);
        return e;
    }
    e = seda__file_threads_ops.create(fs, &fs->pool);
    if (e < 0) {
        seda__file_stage_unref(fs);
        return e;
    }
    /* The engine, falling back along io_uring -> libaio -> threads. */
    for (;; engine++) {
        fs->ops = ops_for(engine);
        if (engine == SEDA_DISK_THREADS) {
            fs->engine = fs->pool;
            break;
        }
        e = fs->ops->create(fs, &fs->engine);
        if (e == 0)
            break;
        seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                       "file stage %s: the %s engine is unavailable (%s); trying %s", fs->name,
                       seda_disk_engine_name(engine), strerror(-e),
                       seda_disk_engine_name(engine + 1));
    }
    e = fs->ops->any_thread ? 0 : make_stage(fs, &fs->submit);
    if (e < 0) {
        teardown(fs);
        seda__file_stage_unref(fs);
        return e;
    }
    fs->hold = fs->submit ? fs->submit : fs->pool_stage;
    /* Before the engine starts on the home worker (a SINGLE_ISSUER ring
     * takes registrations only before it is enabled). */
    if (fs->opts.register_buffers >= 0 && fs->ops->register_buffers && fs->buffers.base) {
        e = fs->ops->register_buffers(fs->engine, fs->buffers.base, fs->buffers.size);
        if (e == 0)
            fs->buffers_registered = 1;
        else
            seda__file_log(
                fs, fs->opts.register_buffers > 0 ? SEDA_FILE_LOG_WARNING : SEDA_FILE_LOG_INFO,
                "file stage %s: could not register the buffer arena (%s); unregistered buffers",
                fs->name, strerror(-e));
    }
    /* The home loop attaches when this runs or when the submission handler
     * first runs there, whichever comes first. A loop that has exited (the
     * runtime stopping meanwhile) never runs either: nothing reached the
     * kernel then. */
    seda__loop_post(fs->home, &fs->attach_task);
    *out = fs;
    return 0;
}

static void teardown(struct seda_file_stage *fs)
{
    atomic_store_explicit(&fs->destroying, true, memory_order_release);
    /* 1. The submission stage: queued requests come back -ECANCELED through
     *    submit_drop; once seda_stage_destroy returns its handler is done. */
    if (fs->submit)
        seda_stage_destroy(fs->submit, SEDA_SHUTDOWN_HAND_BACK);
    /* 2. The pool: queued requests come back -ECANCELED, running ones finish. */
    if (fs->pool)
        seda__file_threads_ops.stop(fs->pool);
    /* 3. The home loop: it cancels the backlog, lets the kernel give back
     *    what it holds, and lets go of the stage. Nothing is posted to it
     *    after this (release: pairs with seda__file_arm_tick's acquire), so
     *    once it says it is done (or the runtime's threads are gone) the
     *    stage is this thread's alone. */
    if (fs->home) {
        atomic_store_explicit(&fs->no_posts, true, memory_order_release);
        /* A post refused means the loop has exited: its exit task ran. */
        bool posted = seda__loop_post(fs->home, &fs->detach_task);
        /* Acquire: pairs with the home worker's release store. */
        while (posted && !atomic_load_explicit(&fs->detach_done, memory_order_acquire) &&
               !seda__loop_all_exited(fs->rt))
            poll(NULL, 0, 1);
    }
    /* 4. Not attached, or the loop gone: the backlog is ours (the exit task
     *    emptied it if it ran) and the kernel holds nothing. */
    cancel_backlog(fs, NULL);
    /* 5. Completions waiting for room in their sink. */
    seda__file_deliver_parked_waiting(fs, DESTROY_DELIVERY_WAIT_NS);
    /* 6. Files never closed. Every request has been delivered, so each holds
     *    only its open reference. */
    pthread_mutex_lock(&fs->files_lock);
    seda_file_t *f = fs->files;
    fs->files = NULL;
    pthread_mutex_unlock(&fs->files_lock);
    while (f) {
        seda_file_t *next = f->next;
        close(f->fd);
        atomic_fetch_sub_explicit(&fs->files_open, 1, memory_order_relaxed);
        seda__file_mem_unref(f);
        f = next;
    }
    if (fs->engine && fs->engine != fs->pool)
        fs->ops->destroy(fs->engine);
    if (fs->pool)
        seda__file_threads_ops.destroy(fs->pool);
    fs->engine = fs->pool = NULL;
    if (fs->submit)
        seda_stage_release(fs->submit);
    fs->submit = NULL;
}

void seda_file_stage_destroy(seda_file_stage_t *fs)
{
    if (!fs)
        return;
    teardown(fs);
    seda__file_stage_unref(fs);
}

/* ---- queries ------------------------------------------------------------- */

int seda_file_stage_engine(const seda_file_stage_t *fs)
{
    return fs->ops->kind;
}

void seda_file_stage_retain(seda_file_stage_t *fs)
{
    /* Relaxed: the caller holds a reference. */
    atomic_fetch_add_explicit(&fs->refs, 1, memory_order_relaxed);
}

void seda_file_stage_release(seda_file_stage_t *fs)
{
    if (fs)
        seda__file_stage_unref(fs);
}

uint32_t seda_file_stage_thread(const seda_file_stage_t *fs)
{
    return fs->home_index;
}

seda_stage_t *seda_file_stage_pool(const seda_file_stage_t *fs)
{
    return fs->pool_stage;
}

int seda_file_stage_set_threads(seda_file_stage_t *fs, uint32_t n)
{
    return fs->pool_stage ? seda_stage_set_threads(fs->pool_stage, n) : -EPIPE;
}

void seda_file_stage_stats(const seda_file_stage_t *fs, seda_file_stage_stats_t *out)
{
#define LOAD(x) atomic_load_explicit(&fs->x, memory_order_relaxed)
    memset(out, 0, sizeof *out);
    out->engine = fs->ops->kind;
    out->buffers_registered = fs->buffers_registered;
    out->accepted = LOAD(accepted);
    out->completed = LOAD(completed);
    out->failed = LOAD(failed);
    out->canceled = LOAD(canceled);
    out->bytes_read = LOAD(bytes_read);
    out->bytes_written = LOAD(bytes_written);
    out->submit_calls = LOAD(submit_calls);
    out->reap_calls = LOAD(reap_calls);
    out->pending = LOAD(pending);
    int64_t k = LOAD(in_kernel);
    out->in_kernel = k > 0 ? (uint64_t)k : 0;
    out->delivery_retries = LOAD(delivery_retries);
    out->undeliverable = LOAD(undeliverable);
    out->direct_fallbacks = LOAD(direct_fallbacks);
    out->events_outstanding = LOAD(events_live);
    out->buffers_outstanding = atomic_load_explicit(&fs->buffers.outstanding, memory_order_relaxed);
    out->buffers_heap = atomic_load_explicit(&fs->buffers.heap, memory_order_relaxed);
    out->files_open = LOAD(files_open);
#undef LOAD
}
