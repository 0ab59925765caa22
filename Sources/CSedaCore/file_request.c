/*
 * File requests (include/seda/file.h): acceptance, routing, the completion
 * and its delivery, open, adopt and the last reference of a file.
 *
 * Accounting. A request, once accepted, holds: one unit of the stage's
 * `pending` (until its result is known: max_pending bounds the work queued
 * in the stage, the backlog and the kernel), a reference on its file (until
 * its completion is delivered, so the CLOSE completion comes last and the
 * descriptor is not closed under a request), a reference on its sink stage
 * (until delivered), and one of the file stage's `refs` (until the event is
 * released: the stage's memory outlives every event, see fs_unref), and a
 * unit held on the stage's hold stage (until delivered: a DRAIN shutdown
 * waits for requests in the kernel and completions parked on a full sink).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_internal.h"

_Static_assert((int)SEDA_FILE_LOG_INFO == (int)SEDA_LOG_INFO &&
                   (int)SEDA_FILE_LOG_WARNING == (int)SEDA_LOG_WARNING,
               "file stage log levels are the runtime's");

/* The largest read or write Linux performs in one call (MAX_RW_COUNT). */
#define MAX_RW ((size_t)0x7ffff000)

/* ---- log ----------------------------------------------------------------- */

void seda__file_log(struct seda_file_stage *fs, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (fs->opts.log)
        fs->opts.log(fs->opts.log_ctx, level, msg);
    else /* the levels are the runtime's (file.h) */
        seda__log(fs->rt, level, fs->name, "%s", msg);
}

/* ---- events -------------------------------------------------------------- */

static inline seda__file_req_t *req_of(seda_file_event_t *ev)
{
    return (seda__file_req_t *)ev; /* ev is the first member */
}

static seda__file_req_t *req_new(struct seda_file_stage *fs, int op, seda_file_t *f,
                                 const seda_file_sink_t *sink, void *user)
{
    seda__file_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->fs = fs;
    r->ev.op = op;
    r->ev.file = f;
    r->ev.user = user;
    r->sink = *sink;
    /* Pairs with the acq_rel decrement in seda__file_stage_unref; relaxed
     * suffices for an increment made while another reference is held. */
    atomic_fetch_add_explicit(&fs->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&fs->events_live, 1, memory_order_relaxed);
    return r;
}

void seda_file_event_release(seda_file_event_t *ev)
{
    if (!ev)
        return;
    seda__file_req_t *r = req_of(ev);
    struct seda_file_stage *fs = r->fs;
    if (ev->flags & SEDA_FILE_EVENT_OWNS_BUFFER)
        seda__file_buffers_free(&fs->buffers, ev->buf);
    free(r->path);
    if (r->owned_file)
        seda__file_mem_unref(r->owned_file);
    free(r);
    atomic_fetch_sub_explicit(&fs->events_live, 1, memory_order_relaxed);
    seda__file_stage_unref(fs);
}

seda_file_stage_t *seda_file_event_stage(const seda_file_event_t *ev)
{
    return ((const seda__file_req_t *)ev)->fs; /* ev is the first member */
}

void *seda_file_event_take_buffer(seda_file_event_t *ev)
{
    if (!ev || !(ev->flags & SEDA_FILE_EVENT_OWNS_BUFFER))
        return NULL;
    ev->flags &= ~(uint32_t)SEDA_FILE_EVENT_OWNS_BUFFER;
    /* The buffer now keeps the stage's memory (its arena) itself; relaxed:
     * the event's own reference is held meanwhile. */
    atomic_fetch_add_explicit(&req_of(ev)->fs->refs, 1, memory_order_relaxed);
    return ev->buf;
}

/* ---- delivery ------------------------------------------------------------ */

static void file_unref(seda_file_t *f);

static void undeliverable(struct seda_file_stage *fs, seda__file_req_t *r)
{
    atomic_fetch_add_explicit(&fs->undeliverable, 1, memory_order_relaxed);
    if (fs->opts.undeliverable)
        fs->opts.undeliverable(fs->opts.undeliverable_ctx, &r->ev);
    else
        seda_file_event_release(&r->ev);
}

static void park(struct seda_file_stage *fs, seda__file_req_t *r);

/* Hands the completion to its sink, then drops what the request held. After
 * a successful enqueue the event may already be released: only locals are
 * used from there on. */
static void deliver(seda__file_req_t *r)
{
    struct seda_file_stage *fs = r->fs;
    seda_stage_t *hold = fs->hold;
    seda_file_t *f = r->holds_file_ref ? r->ev.file : NULL;
    seda_file_sink_t sink = r->sink;
    if (sink.stage) {
        int e = seda_stage_enqueue(sink.stage, &r->ev);
        if (e == -EAGAIN) {
            park(fs, r);
            return;
        }
        if (e < 0)
            undeliverable(fs, r);
        seda_stage_release(sink.stage);
    } else {
        sink.deliver(sink.ctx, &r->ev);
    }
    if (f)
        file_unref(f);
    seda__stage_unhold(hold); /* after the enqueue: the drain sees it there */
}

/* The sink was full: keep the completion for the home loop's tick. */
static void park(struct seda_file_stage *fs, seda__file_req_t *r)
{
    r->next = NULL;
    pthread_mutex_lock(&fs->retry_lock);
    if (fs->retry_tail)
        fs->retry_tail->next = r;
    else
        fs->retry_head = r;
    fs->retry_tail = r;
    pthread_mutex_unlock(&fs->retry_lock);
    atomic_fetch_add_explicit(&fs->delivery_retries, 1, memory_order_relaxed);
    /* seq_cst, before arming: pairs with the tick's clear-then-check of
     * tick_armed (file.c, tick_fire). */
    atomic_fetch_add(&fs->retry_count, 1);
    seda__file_arm_tick(fs);
}

size_t seda__file_retry_parked(struct seda_file_stage *fs)
{
    if (atomic_load(&fs->retry_count) == 0)
        return 0;
    pthread_mutex_lock(&fs->retry_lock);
    seda__file_req_t *r = fs->retry_head;
    fs->retry_head = fs->retry_tail = NULL;
    pthread_mutex_unlock(&fs->retry_lock);
    size_t n = 0;
    while (r) {
        seda__file_req_t *next = r->next;
        atomic_fetch_sub(&fs->retry_count, 1);
        deliver(r); /* parks it again if the sink is still full */
        r = next;
        n++;
    }
    return n;
}

void seda__file_deliver_parked_waiting(struct seda_file_stage *fs, int64_t timeout_ns)
{
    pthread_mutex_lock(&fs->retry_lock);
    seda__file_req_t *r = fs->retry_head;
    fs->retry_head = fs->retry_tail = NULL;
    pthread_mutex_unlock(&fs->retry_lock);
    while (r) {
        seda__file_req_t *next = r->next;
        atomic_fetch_sub(&fs->retry_count, 1);
        seda_file_t *f = r->holds_file_ref ? r->ev.file : NULL;
        seda_stage_t *stage = r->sink.stage;
        int e = seda_stage_enqueue_wait(stage, &r->ev, timeout_ns);
        if (e < 0) {
            if (e == -ETIMEDOUT)
                seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                               "file stage %s: a sink stayed full while the stage was destroyed; "
                               "its completion goes to undeliverable",
                               fs->name);
            undeliverable(fs, r);
        }
        seda_stage_release(stage);
        if (f)
            file_unref(f);
        seda__stage_unhold(fs->hold);
        r = next;
    }
}

void seda__file_complete(seda__file_req_t *r, int64_t result)
{
    struct seda_file_stage *fs = r->fs;
    r->ev.result = result;
    r->ev.completed_ns = seda__now_ns();
    atomic_fetch_add_explicit(&fs->completed, 1, memory_order_relaxed);
    if (result < 0) {
        atomic_fetch_add_explicit(&fs->failed, 1, memory_order_relaxed);
        if (result == -ECANCELED)
            atomic_fetch_add_explicit(&fs->canceled, 1, memory_order_relaxed);
    } else if (r->ev.op == SEDA_FILE_READ) {
        atomic_fetch_add_explicit(&fs->bytes_read, (uint64_t)result, memory_order_relaxed);
    } else if (r->ev.op == SEDA_FILE_WRITE) {
        atomic_fetch_add_explicit(&fs->bytes_written, (uint64_t)result, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&fs->pending, 1, memory_order_relaxed);
    deliver(r);
}

void seda__file_kernel_done(struct seda_file_stage *fs, seda__file_req_t *r, int64_t result)
{
    /* The home worker both raised in_kernel (file.c, prep_one) and lowers
     * it here: a load and a store (statistics read it relaxed). The same
     * thread wrote r before the kernel carried it here. */
    atomic_store_explicit(&fs->in_kernel,
                          atomic_load_explicit(&fs->in_kernel, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    /* A request the kernel interrupted because its file's close asked to
     * cancel it (an io_uring worker signalled mid-way) was cancelled. */
    if (result == -EINTR && r->ev.file &&
        atomic_load_explicit(&r->ev.file->closing, memory_order_acquire))
        result = -ECANCELED;
    seda__file_complete(r, result);
}

/* ---- faults -------------------------------------------------------------- */

/* Counts one request of kind `op` against the armed fault; returns the errno
 * to fail it with, or 0. */
static int fault_hit(struct seda_file_stage *fs, int op)
{
    if (SEDA__LIKELY(!(atomic_load_explicit(&fs->fault_mask, memory_order_relaxed) & (1u << op))))
        return 0;
    int err = 0;
    pthread_mutex_lock(&fs->fault_lock);
    if (atomic_load_explicit(&fs->fault_mask, memory_order_relaxed) & (1u << op)) {
        uint64_t seen = ++fs->fault_seen;
        if (seen >= fs->fault_nth && seen - fs->fault_nth < fs->fault_count)
            err = fs->fault_error;
    }
    pthread_mutex_unlock(&fs->fault_lock);
    return err;
}

bool seda__file_fault_no_direct(struct seda_file_stage *fs)
{
    return fault_hit(fs, SEDA_FILE_FAULT_NO_DIRECT) != 0;
}

int seda_file_stage_inject_fault(seda_file_stage_t *fs, uint32_t op_mask, uint64_t nth,
                                 uint32_t count, int error)
{
    if (!fs || (op_mask && (error <= 0 || error > 4095 || nth == 0)))
        return -EINVAL;
    pthread_mutex_lock(&fs->fault_lock);
    fs->fault_nth = nth;
    fs->fault_seen = 0;
    fs->fault_count = count ? count : 1;
    fs->fault_error = error;
    atomic_store_explicit(&fs->fault_mask, op_mask, memory_order_relaxed);
    pthread_mutex_unlock(&fs->fault_lock);
    return 0;
}

bool seda__file_precheck(seda__file_req_t *r)
{
    seda_file_t *f = r->ev.file;
    if (f && atomic_load_explicit(&f->closing, memory_order_acquire)) {
        seda__file_complete(r, -ECANCELED);
        return false;
    }
    int err = fault_hit(r->fs, r->ev.op);
    if (err) {
        seda__file_complete(r, -err);
        return false;
    }
    r->prechecked = true;
    return true;
}

/* ---- files --------------------------------------------------------------- */

/* The last reference: close the descriptor and deliver the CLOSE. Only a
 * processed close drops the open reference, so close_req is set. */
static void file_finalize(seda_file_t *f)
{
    struct seda_file_stage *fs = f->fs;
    int r = close(f->fd) == 0 || errno == EINTR ? 0 : -errno; /* Linux frees the fd even on EINTR */
    pthread_mutex_lock(&fs->files_lock);
    if (f->prev)
        f->prev->next = f->next;
    else
        fs->files = f->next;
    if (f->next)
        f->next->prev = f->prev;
    pthread_mutex_unlock(&fs->files_lock);
    atomic_fetch_sub_explicit(&fs->files_open, 1, memory_order_relaxed);
    seda__file_req_t *c = f->close_req;
    c->owned_file = f;
    seda__file_complete(c, r);
}

static void file_unref(seda_file_t *f)
{
    /* acq_rel: the thread that takes the count to 0 sees every other
     * holder's work on the file before it closes it. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        file_finalize(f);
}

/* A new reference, unless the file is already finalized (its last reference
 * is gone: it is closed, and the handle lives only as long as its CLOSE
 * event). Never brings a finalized file back. */
static bool file_try_ref(seda_file_t *f)
{
    uint32_t n = atomic_load_explicit(&f->refs, memory_order_relaxed);
    do {
        if (n == 0)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&f->refs, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void seda__file_unref(seda_file_t *f)
{
    file_unref(f);
}

void seda__file_mem_unref(seda_file_t *f)
{
    /* acq_rel: the thread that frees sees every holder's use first. */
    if (atomic_fetch_sub_explicit(&f->mem_refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

void seda_file_retain(seda_file_t *f)
{
    /* Relaxed: the caller holds a valid handle, so one reference at least. */
    atomic_fetch_add_explicit(&f->mem_refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&f->fs->refs, 1, memory_order_relaxed);
}

void seda_file_release(seda_file_t *f)
{
    if (!f)
        return;
    struct seda_file_stage *fs = f->fs;
    seda__file_mem_unref(f);
    seda__file_stage_unref(fs);
}

/* The direct-I/O alignment the file system asks for (statx STATX_DIOALIGN),
 * or 4096 (every device's logical block size divides it) if it does not say. */
static void dio_alignment(int fd, uint32_t *mem, uint32_t *off)
{
    *mem = *off = SEDA_FILE_BUFFER_ALIGN;
#ifdef STATX_DIOALIGN
    struct statx st;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 && (st.stx_mask & STATX_DIOALIGN) &&
        st.stx_dio_mem_align && st.stx_dio_offset_align) {
        *mem = st.stx_dio_mem_align;
        *off = st.stx_dio_offset_align;
    }
#endif
}

/* A handle for fd served by (ops, engine), not yet linked. NULL: -ENOMEM. */
static seda_file_t *file_new(struct seda_file_stage *fs, int fd,
                             const struct seda__file_engine_ops *ops,
                             struct seda__file_engine *engine, int direct)
{
    seda_file_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->fs = fs;
    f->ops = ops;
    f->engine = engine;
    f->fd = fd;
    f->direct = direct;
    f->mem_align = f->offset_align = 1;
    if (direct)
        dio_alignment(fd, &f->mem_align, &f->offset_align);
    atomic_init(&f->refs, 1);
    atomic_init(&f->mem_refs, 1);
    return f;
}

/* Adds f to the stage's open files. Under files_lock. */
static void file_link(struct seda_file_stage *fs, seda_file_t *f)
{
    f->next = fs->files;
    if (fs->files)
        fs->files->prev = f;
    fs->files = f;
    atomic_fetch_add_explicit(&fs->files_open, 1, memory_order_relaxed);
}

void seda__file_do_open(seda__file_req_t *r)
{
    struct seda_file_stage *fs = r->fs;
    if (!seda__file_precheck(r))
        return;
    int flags = r->open_flags;
    bool want_direct = (flags & O_DIRECT) || fs->ops->needs_direct;
    /* Opened without O_DIRECT, which is then set with fcntl: a file system
     * that refuses it makes fcntl fail, while open would have failed after
     * creating the file (and a retry with O_EXCL would then see EEXIST). */
    int fd = open(r->path, (flags & ~O_DIRECT) | O_CLOEXEC, r->mode);
    if (fd < 0) {
        seda__file_complete(r, -errno);
        return;
    }
    const struct seda__file_engine_ops *ops = fs->ops;
    struct seda__file_engine *engine = fs->engine;
    int direct = 0;
    struct stat st;
    if (want_direct && fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
        int e = 0;
        if (seda__file_fault_no_direct(fs)) {
            e = -EINVAL;
        } else {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
                e = -errno;
        }
        if (e == 0) {
            direct = 1;
        } else {
            atomic_fetch_add_explicit(&fs->direct_fallbacks, 1, memory_order_relaxed);
            if (ops->needs_direct) {
                ops = &seda__file_threads_ops;
                engine = fs->pool;
            }
            seda__file_log(fs, SEDA_FILE_LOG_WARNING,
                           "file stage %s: the file system of %s refuses O_DIRECT (%s): "
                           "buffered I/O on the %s engine instead",
                           fs->name, r->path, strerror(-e), seda_disk_engine_name(ops->kind));
        }
    } else if (want_direct && ops->needs_direct) {
        /* A directory: nothing to read or write directly; let the pool
         * report what the kernel says about it. */
        ops = &seda__file_threads_ops;
        engine = fs->pool;
    }
    seda_file_t *f = file_new(fs, fd, ops, engine, direct);
    if (!f) {
        close(fd);
        seda__file_complete(r, -ENOMEM);
        return;
    }
    pthread_mutex_lock(&fs->files_lock);
    file_link(fs, f);
    pthread_mutex_unlock(&fs->files_lock);
    r->ev.file = f;
    seda__file_complete(r, 0);
}

int seda_file_adopt(seda_file_stage_t *fs, int fd, seda_file_t **out)
{
    if (!fs || !out || fd < 0)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (fl & (O_APPEND | O_PATH))
        return -EINVAL;
    /* Only a buffered fd of a libaio stage changes engine (file.h). */
    const struct seda__file_engine_ops *ops = fs->ops;
    struct seda__file_engine *engine = fs->engine;
    int direct = (fl & O_DIRECT) != 0;
    if (!direct && ops->needs_direct) {
        ops = &seda__file_threads_ops;
        engine = fs->pool;
    }
    seda_file_t *f = file_new(fs, fd, ops, engine, direct);
    if (!f)
        return -ENOMEM;
    /* Under files_lock: teardown sets `destroying` before it takes the lock
     * to close the files left open, so either it finds this file in the
     * list or this check sees the flag (acquire: pairs with its release). */
    pthread_mutex_lock(&fs->files_lock);
    bool gone = atomic_load_explicit(&fs->destroying, memory_order_acquire);
    if (!gone)
        file_link(fs, f);
    pthread_mutex_unlock(&fs->files_lock);
    if (gone) {
        free(f);
        return -EPIPE;
    }
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
        (void)fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
    /* Requests wait for the disk: io_uring would complete a read that
     * misses the page cache on an O_NONBLOCK file with -EAGAIN (file
     * systems without async buffered reads), the pool's pread on a pipe
     * likewise. Fails only on a descriptor that is not open. */
    if (fl & O_NONBLOCK)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *out = f;
    return 0;
}

uint32_t seda_file_alignment(const seda_file_t *f)
{
    return f->mem_align > f->offset_align ? f->mem_align : f->offset_align;
}

seda_file_stage_t *seda_file_stage_of(const seda_file_t *f)
{
    return f->fs;
}

int seda_file_is_direct(const seda_file_t *f)
{
    return f->direct;
}

int seda_file_engine(const seda_file_t *f)
{
    return f->ops->kind;
}

/* ---- acceptance ---------------------------------------------------------- */

static bool sink_ok(const seda_file_sink_t *sink)
{
    return sink && (sink->stage || sink->deliver);
}

/* Hands an accepted request to its route: the engine itself when it takes
 * requests from any thread (the pool), else the submission stage. */
static int route(struct seda_file_stage *fs, seda_file_t *f, seda__file_req_t *r)
{
    if (!f)
        return seda__file_threads_ops.prep(fs->pool, r);
    if (f->ops->any_thread)
        return f->ops->prep(f->engine, r);
    return seda_stage_enqueue(fs->submit, r);
}

/* Accepts r (see the top of this file) or frees it and says why not. */
static int accept_request(struct seda_file_stage *fs, seda_file_t *f, seda__file_req_t *r)
{
    int e = -EPIPE;
    if (atomic_load_explicit(&fs->destroying, memory_order_acquire))
        goto refuse;
    e = -EAGAIN;
    if (atomic_fetch_add_explicit(&fs->pending, 1, memory_order_relaxed) >= fs->opts.max_pending)
        goto unpend;
    if (f && r->ev.op != SEDA_FILE_CLOSE) {
        /* The reference first, the check second: a close processed between
         * them sees this reference, so the file cannot be finalized under us. */
        e = -EBADF;
        if (!file_try_ref(f))
            goto unpend;
        r->holds_file_ref = true;
        if (atomic_load_explicit(&f->close_called, memory_order_acquire))
            goto unref;
    }
    if (r->sink.stage)
        seda_stage_retain(r->sink.stage);
    r->ev.accepted_ns = seda__now_ns();
    seda__stage_hold(fs->hold); /* before it can complete */
    e = route(fs, f, r);
    if (e == 0) {
        atomic_fetch_add_explicit(&fs->accepted, 1, memory_order_relaxed);
        return 0;
    }
    seda__stage_unhold(fs->hold);
    if (r->sink.stage)
        seda_stage_release(r->sink.stage);
unref:
    if (r->holds_file_ref)
        file_unref(f);
unpend:
    atomic_fetch_sub_explicit(&fs->pending, 1, memory_order_relaxed);
refuse:
    if (r->caller_buffer) /* the caller keeps its buffer */
        r->ev.flags &= ~(uint32_t)SEDA_FILE_EVENT_OWNS_BUFFER;
    seda_file_event_release(&r->ev);
    return e;
}

int seda_file_open(seda_file_stage_t *fs, const char *path, int flags, mode_t mode,
                   const seda_file_sink_t *sink, void *user)
{
    if (!fs || !path || !sink_ok(sink) || (flags & O_APPEND))
        return -EINVAL;
    seda__file_req_t *r = req_new(fs, SEDA_FILE_OPEN, NULL, sink, user);
    if (!r)
        return -ENOMEM;
    r->path = strdup(path);
    if (!r->path) {
        seda_file_event_release(&r->ev);
        return -ENOMEM;
    }
    r->open_flags = flags;
    r->mode = mode;
    return accept_request(fs, NULL, r);
}

/* O_DIRECT's rule, checked when the request is made. */
static int check_aligned(seda_file_t *f, uint64_t offset, const void *buf, size_t len)
{
    if (!f->direct)
        return 0;
    if (offset % f->offset_align == 0 && len % f->offset_align == 0 &&
        (!buf || (uintptr_t)buf % f->mem_align == 0))
        return 0;
    struct seda_file_stage *fs = f->fs;
    if (!atomic_exchange_explicit(&fs->warned_alignment, true, memory_order_relaxed))
        seda__file_log(
            fs, SEDA_FILE_LOG_WARNING,
            "file stage %s: refused a request on an O_DIRECT file: offset %llu, length %zu, "
            "buffer %p must be multiples of %u (offset, length) and %u (buffer); "
            "use seda_file_buffer_alloc (further refusals are not logged)",
            fs->name, (unsigned long long)offset, len, buf, f->offset_align, f->mem_align);
    return -EINVAL;
}

static int rw_request(seda_file_t *f, int op, uint64_t offset, void *buf, size_t len, bool pooled,
                      const seda_file_sink_t *sink, void *user)
{
    if (!f || !sink_ok(sink) || len == 0 || len > MAX_RW || offset > (uint64_t)INT64_MAX - len ||
        (op == SEDA_FILE_WRITE && !buf))
        return -EINVAL;
    int e = check_aligned(f, offset, buf, len);
    if (e < 0)
        return e;
    struct seda_file_stage *fs = f->fs;
    seda__file_req_t *r = req_new(fs, op, f, sink, user);
    if (!r)
        return -ENOMEM;
    if (pooled) { /* the caller's pooled buffer travels in the request */
        r->ev.flags |= SEDA_FILE_EVENT_OWNS_BUFFER;
        r->caller_buffer = true;
    } else if (!buf) {
        buf = seda__file_buffers_alloc(&fs->buffers, len);
        if (!buf) {
            seda_file_event_release(&r->ev);
            return -ENOMEM;
        }
        r->ev.flags |= SEDA_FILE_EVENT_OWNS_BUFFER;
    }
    r->ev.offset = offset;
    r->ev.buf = buf;
    r->ev.len = len;
    int accepted = accept_request(fs, f, r);
    /* A pooled buffer given to the request no longer keeps the stage's
     * memory: the event does (and may be gone already: fs is not touched
     * after this). */
    if (accepted == 0 && pooled)
        seda__file_stage_unref(fs);
    return accepted;
}

int seda_file_read(seda_file_t *f, uint64_t offset, void *buf, size_t len,
                   const seda_file_sink_t *sink, void *user)
{
    return rw_request(f, SEDA_FILE_READ, offset, buf, len, false, sink, user);
}

int seda_file_write(seda_file_t *f, uint64_t offset, const void *buf, size_t len,
                    const seda_file_sink_t *sink, void *user)
{
    return rw_request(f, SEDA_FILE_WRITE, offset, (void *)buf, len, false, sink, user);
}

int seda_file_read_pooled(seda_file_t *f, uint64_t offset, void *buf, size_t len,
                          const seda_file_sink_t *sink, void *user)
{
    if (!buf)
        return -EINVAL;
    return rw_request(f, SEDA_FILE_READ, offset, buf, len, true, sink, user);
}

int seda_file_write_pooled(seda_file_t *f, uint64_t offset, void *buf, size_t len,
                           const seda_file_sink_t *sink, void *user)
{
    return rw_request(f, SEDA_FILE_WRITE, offset, buf, len, true, sink, user);
}

int seda_file_sync(seda_file_t *f, int datasync, const seda_file_sink_t *sink, void *user)
{
    if (!f || !sink_ok(sink))
        return -EINVAL;
    seda__file_req_t *r =
        req_new(f->fs, datasync ? SEDA_FILE_FDATASYNC : SEDA_FILE_FSYNC, f, sink, user);
    if (!r)
        return -ENOMEM;
    return accept_request(f->fs, f, r);
}

int seda_file_close(seda_file_t *f, const seda_file_sink_t *sink, void *user)
{
    if (!f || !sink_ok(sink))
        return -EINVAL;
    if (atomic_exchange_explicit(&f->close_called, true, memory_order_acq_rel))
        return -EBADF;
    /* A reference for the duration of this call: once accepted, the close
     * may be processed, the file finalized and its CLOSE event released on
     * another thread before the store below. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    seda__file_req_t *r = req_new(f->fs, SEDA_FILE_CLOSE, f, sink, user);
    int e = r ? accept_request(f->fs, f, r) : -ENOMEM;
    if (e < 0) {
        atomic_store_explicit(&f->close_called, false, memory_order_release);
        file_unref(f); /* the open reference remains: never the last */
        return e;
    }
    /* Requests queued ahead of the close are cancelled rather than run.
     * Release: pairs with the acquire in seda__file_precheck. */
    atomic_store_explicit(&f->closing, true, memory_order_release);
    file_unref(f); /* may be the last: then the CLOSE is delivered from here */
    return 0;
}

/* ---- buffers ------------------------------------------------------------- */

void *seda_file_buffer_alloc(seda_file_stage_t *fs, size_t len)
{
    void *buf = fs ? seda__file_buffers_alloc(&fs->buffers, len) : NULL;
    if (buf) /* it keeps the arena: relaxed, the caller holds the stage */
        atomic_fetch_add_explicit(&fs->refs, 1, memory_order_relaxed);
    return buf;
}

void seda_file_buffer_free(seda_file_stage_t *fs, void *buf)
{
    if (!fs || !buf)
        return;
    seda__file_buffers_free(&fs->buffers, buf);
    seda__file_stage_unref(fs);
}
