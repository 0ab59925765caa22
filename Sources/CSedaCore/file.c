/*
 * The file stage (include/seda/file.h): engine choice, the submission stage,
 * the completion side, and the stage's life.
 *
 * Three stages of the runtime make a file stage:
 *
 *  "<name>"       shared threads, concurrency 1 (io_uring and libaio only).
 *                 Its handler gets a batch of requests and prepares them
 *                 all into the engine, then submits them with one call
 *                 (io_uring_enter, io_submit): submissions are batched per
 *                 stage batch, and the ring's submission queue has a single
 *                 producer at a time without a lock. Requests beyond the
 *                 engine's depth wait in a backlog, in order.
 *  "<name>.reap"  INTERIM: a dedicated stage of one thread that waits on the
 *                 engine's completion eventfd (poll, at most REAP_WAIT_MS per
 *                 handler call) and reaps. It is armed with a token while
 *                 the kernel holds requests (or completions wait for a full
 *                 sink) and re-arms itself until none do, so a DRAIN
 *                 shutdown sees the stage busy while I/O is in flight. Once
 *                 worker loops exist, a worker watches
 *                 seda__file_stage_completion_fd in its poller and calls
 *                 seda__file_stage_reap on readiness instead: the same
 *                 function this stage calls.
 *  "<name>.pool"  the threads engine (file_threads.c): open and close for
 *                 every engine, every request on the threads engine, and
 *                 files whose file system refuses the O_DIRECT libaio needs.
 *
 * Completions are delivered by whoever learns the result: the reaper, a pool
 * thread, or the submission handler for a request that fails before reaching
 * the kernel.
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
#define REAP_BATCH 256
/* How long one reaper handler call waits for completions before it returns
 * (and re-arms): bounds how long a runtime shutdown waits for this thread. */
#define REAP_WAIT_MS 20
/* How long destroy waits for a full sink to take a parked completion. */
#define DESTROY_DELIVERY_WAIT_NS (INT64_C(5) * 1000000000)

/* Sentinels carried through the stages' queues (never dereferenced). */
static char kick_token; /* submission stage: the backlog may move */
static char reap_token; /* reaper: reap */

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

/* ---- the completion side ------------------------------------------------- */

int seda__file_stage_completion_fd(struct seda_file_stage *fs)
{
    return fs->ops->completion_fd ? fs->ops->completion_fd(fs->engine) : -1;
}

void seda__file_arm_reaper(struct seda_file_stage *fs)
{
    /* seq_cst load and exchange, after the caller's seq_cst raise of
     * in_kernel or retry_count: pairs with the reaper's store of false and
     * its loads of those counters (reap_handler). Either the reaper sees the
     * raise and re-arms, or we see false and arm. */
    if (atomic_load(&fs->reaper_armed) || atomic_exchange(&fs->reaper_armed, true))
        return;
    if (seda_stage_enqueue_control(fs->reap, &reap_token) < 0)
        atomic_store(&fs->reaper_armed, false); /* stopping: destroy reaps */
}

size_t seda__file_stage_reap(struct seda_file_stage *fs, size_t max)
{
    int fd = seda__file_stage_completion_fd(fs);
    if (fd >= 0) {
        /* Reset the eventfd before reaping: a completion posted after this
         * read signals it again, so none is left unnoticed. */
        uint64_t v;
        ssize_t n = read(fd, &v, sizeof v);
        (void)n; /* EAGAIN: nothing signalled since the last read */
    }
    size_t n = fs->ops->reap ? fs->ops->reap(fs->engine, max) : 0;
    /* seq_cst, after the seq_cst decrements of in_kernel in
     * seda__file_kernel_done: pairs with submit_backlog's store of
     * backlog_waiting and its capacity check. */
    if (n && atomic_load(&fs->backlog_waiting) && atomic_exchange(&fs->backlog_waiting, false))
        seda_stage_enqueue_control(
            fs->submit,
            &kick_token); /* full or closed: the handler runs anyway, or destroy cleans up */
    return n;
}

/* INTERIM (until worker loops): the reaper stage's handler; see the top. */
static int reap_handler(void *ctx, void **events, size_t count)
{
    (void)events, (void)count;
    struct seda_file_stage *fs = ctx;
    seda__file_retry_parked(fs);
    int fd = seda__file_stage_completion_fd(fs);
    bool retrying = atomic_load(&fs->retry_count) > 0;
    if (fd >= 0 && atomic_load(&fs->in_kernel) > 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, retrying ? 1 : REAP_WAIT_MS);
        while (seda__file_stage_reap(fs, REAP_BATCH) == REAP_BATCH)
            ;
    } else if (retrying) {
        poll(NULL, 0, 1);
    }
    /* seq_cst store, then seq_cst loads: pairs with seda__file_arm_reaper. */
    atomic_store(&fs->reaper_armed, false);
    if (atomic_load(&fs->in_kernel) > 0 || atomic_load(&fs->retry_count) > 0)
        seda__file_arm_reaper(fs);
    return 0;
}

static void reap_drop(void *ctx, void *event)
{
    (void)ctx, (void)event; /* only tokens travel here */
}

/* ---- the submission side ------------------------------------------------- */

static void backlog_append(struct seda_file_stage *fs, seda__file_req_t *r)
{
    r->next = NULL;
    if (fs->backlog_tail)
        fs->backlog_tail->next = r;
    else
        fs->backlog_head = r;
    fs->backlog_tail = r;
}

/* Prepares one request: 1 if the engine took it, 0 if it completed here
 * (closing, fault, refused) or waits (-EAGAIN: *full set; the caller keeps it). */
static int prep_one(struct seda_file_stage *fs, seda__file_req_t *r, bool *full)
{
    if (!r->prechecked && !seda__file_precheck(r))
        return 0;
    int e = fs->ops->prep(fs->engine, r);
    if (e == 0) {
        /* seq_cst: the reaper must see the request counted before the kernel
         * can complete it (the flush comes later), and arming pairs with it.
         * Its release half publishes this thread's writes to r to the
         * reaper's decrement (seda__file_kernel_done). */
        atomic_fetch_add(&fs->in_kernel, 1);
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

static void flush(struct seda_file_stage *fs, int prepped)
{
    if (prepped == 0 && !fs->flush_failed)
        return;
    int e = fs->ops->flush(fs->engine);
    if (e > 0) /* 0: nothing was prepared (a close with nothing to cancel) */
        atomic_fetch_add_explicit(&fs->submit_calls, 1, memory_order_relaxed);
    if (e < 0) {
        /* The kernel is short of something (-EAGAIN, -ENOMEM): the requests
         * stay prepared; come back after what is queued. */
        if (!fs->flush_failed)
            seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                           "file stage %s: submission failed (%s); retrying", fs->name,
                           strerror(-e));
        fs->flush_failed = true;
        seda_stage_enqueue_control(fs->submit, &kick_token);
    } else {
        fs->flush_failed = false;
    }
    seda__file_arm_reaper(fs);
}

/* Cancels the backlog's requests on f (its close is being processed). */
static void cancel_backlog(struct seda_file_stage *fs, seda_file_t *f)
{
    seda__file_req_t **pp = &fs->backlog_head, *last = NULL;
    while (*pp) {
        seda__file_req_t *r = *pp;
        if (r->ev.file == f) {
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
 * destroy, since the handler may still run). */
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

static int submit_handler(void *ctx, void **events, size_t count)
{
    struct seda_file_stage *fs = ctx;
    int prepped = submit_backlog(fs);
    for (size_t i = 0; i < count; i++) {
        if (events[i] == &kick_token)
            continue;
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
    if (fs->backlog_head) {
        /* seq_cst store, then the capacity check inside prep (a seq_cst load
         * of in_kernel): pairs with seda__file_stage_reap. Either the reaper
         * sees the flag and kicks, or this retry sees its room. */
        atomic_store(&fs->backlog_waiting, true);
        int more = submit_backlog(fs);
        if (more)
            flush(fs, more);
    }
    return 0;
}

static void submit_drop(void *ctx, void *event)
{
    (void)ctx;
    if (event == &kick_token)
        return;
    seda__file_req_t *r = event;
    if (r->ev.op == SEDA_FILE_CLOSE)
        close_step(r, true);
    else
        seda__file_complete(r, -ECANCELED);
}

/* ---- create / destroy ---------------------------------------------------- */

static int make_stage(struct seda_file_stage *fs, const char *suffix, int manager, uint32_t batch,
                      size_t capacity, seda_handler_fn handler, void (*drop)(void *, void *),
                      seda_stage_t **out)
{
    char name[64];
    snprintf(name, sizeof name, "%s%s", fs->name, suffix);
    seda_stage_options_t so = {
        .name = name,
        .queue_capacity = capacity,
        .batch_max = batch,
        .thread_manager = manager,
        .concurrency = 1,
        .handler = handler,
        .drop = drop,
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
        (opts->max_threads && opts->max_threads < opts->threads))
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
    e = 0;
    if (!fs->ops->any_thread)
        e = make_stage(fs, "", SEDA_THREADS_SHARED, SUBMIT_BATCH, fs->opts.max_pending,
                       submit_handler, submit_drop, &fs->submit);
    if (e == 0)
        e = make_stage(fs, ".reap", SEDA_THREADS_DEDICATED, 1, 16, reap_handler, reap_drop,
                       &fs->reap);
    if (e < 0) {
        teardown(fs);
        seda__file_stage_unref(fs);
        return e;
    }
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
    *out = fs;
    return 0;
}

static void teardown(struct seda_file_stage *fs)
{
    atomic_store_explicit(&fs->destroying, true, memory_order_release);
    /* 1. The submission stage: queued requests come back -ECANCELED through
     *    submit_drop; once seda_stage_destroy returns its handler is done,
     *    and the backlog and the ring's submission side are ours. */
    if (fs->submit) {
        seda_stage_destroy(fs->submit, SEDA_SHUTDOWN_HAND_BACK);
        while (fs->backlog_head) {
            seda__file_req_t *r = fs->backlog_head;
            fs->backlog_head = r->next;
            seda__file_complete(r, -ECANCELED);
        }
        fs->backlog_tail = NULL;
        /* Prepared requests must reach the kernel to complete at all. */
        while (fs->flush_failed) {
            fs->flush_failed = fs->ops->flush(fs->engine) < 0;
            if (fs->flush_failed)
                poll(NULL, 0, 1);
        }
    }
    /* 2. The pool: queued requests come back -ECANCELED, running ones finish. */
    if (fs->pool)
        seda__file_threads_ops.stop(fs->pool);
    /* 3. The reaper: after this, this thread is the only one reaping. */
    if (fs->reap)
        seda_stage_destroy(fs->reap, SEDA_SHUTDOWN_HAND_BACK);
    /* 4. What the kernel still holds. Disk requests always complete. */
    int fd = fs->engine && fs->ops->completion_fd ? fs->ops->completion_fd(fs->engine) : -1;
    while (fd >= 0 && atomic_load(&fs->in_kernel) > 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, 100);
        seda__file_stage_reap(fs, REAP_BATCH);
    }
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
        free(f);
        f = next;
    }
    if (fs->engine && fs->engine != fs->pool)
        fs->ops->destroy(fs->engine);
    if (fs->pool)
        seda__file_threads_ops.destroy(fs->pool);
    fs->engine = fs->pool = NULL;
    if (fs->submit)
        seda_stage_release(fs->submit);
    if (fs->reap)
        seda_stage_release(fs->reap);
    fs->submit = fs->reap = NULL;
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
    out->pending = LOAD(pending);
    int64_t k = LOAD(in_kernel);
    out->in_kernel = k > 0 ? (uint64_t)k : 0;
    out->delivery_retries = LOAD(delivery_retries);
    out->undeliverable = LOAD(undeliverable);
    out->direct_fallbacks = LOAD(direct_fallbacks);
    out->events_outstanding = LOAD(refs) - 1; /* the handle's own */
    out->buffers_outstanding = atomic_load_explicit(&fs->buffers.outstanding, memory_order_relaxed);
    out->buffers_heap = atomic_load_explicit(&fs->buffers.heap, memory_order_relaxed);
    out->files_open = LOAD(files_open);
#undef LOAD
}
