/*
 * The threads engine: pread / pwrite / fsync / fdatasync on a dedicated pool
 * stage of the runtime ("<name>.pool"), the engine that works everywhere.
 *
 * Every file stage has one: it also runs open and close for the other
 * engines (open(2) can block on metadata) and serves the files whose file
 * system refuses the O_DIRECT that libaio needs. Requests reach it from any
 * thread with one enqueue (no submission stage in between), and each pool
 * thread delivers the completions of the requests it ran: no completion fd.
 *
 * Batch size 1: a thread takes one request, so that N requests in flight use
 * N threads (as fio's psync with N jobs does) rather than queue behind one
 * thread's batch. The pool's size is the caller's (options.threads,
 * max_threads) and can change while it runs (seda_file_stage_set_threads,
 * or a thread governor watching seda_file_stage_pool).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "file_internal.h"

struct seda__file_engine {
    struct seda_file_stage *fs;
    seda_stage_t *stage;
};

static int64_t run_io(seda__file_req_t *r)
{
    int fd = r->ev.file->fd;
    for (;;) {
        ssize_t n;
        switch (r->ev.op) {
        case SEDA_FILE_READ: n = pread(fd, r->ev.buf, r->ev.len, (off_t)r->ev.offset); break;
        case SEDA_FILE_WRITE: n = pwrite(fd, r->ev.buf, r->ev.len, (off_t)r->ev.offset); break;
        case SEDA_FILE_FSYNC: n = fsync(fd); break;
        case SEDA_FILE_FDATASYNC: n = fdatasync(fd); break;
        default: return -EINVAL;
        }
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static int pool_handler(void *ctx, void **events, size_t count)
{
    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        seda__file_req_t *r = events[i];
        switch (r->ev.op) {
        case SEDA_FILE_OPEN: seda__file_do_open(r); break;
        case SEDA_FILE_CLOSE: seda__file_do_close(r); break;
        default:
            if (seda__file_precheck(r))
                seda__file_complete(r, run_io(r));
        }
    }
    return 0;
}

/* Handed back (stage destroyed, runtime stopping): cancelled, except a close,
 * which still releases its file. */
static void pool_drop(void *ctx, void *event)
{
    (void)ctx;
    seda__file_req_t *r = event;
    if (r->ev.op == SEDA_FILE_CLOSE)
        seda__file_do_close(r);
    else
        seda__file_complete(r, -ECANCELED);
}

static int threads_create(struct seda_file_stage *fs, struct seda__file_engine **out)
{
    struct seda__file_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->fs = fs;
    char name[64];
    snprintf(name, sizeof name, "%s.pool", fs->name);
    seda_stage_options_t so = {
        .name = name,
        .queue_capacity = fs->opts.max_pending,
        .batch_max = 1,
        .thread_manager = SEDA_THREADS_DEDICATED,
        .concurrency = fs->opts.threads,
        .max_threads = fs->opts.max_threads,
        .handler = pool_handler,
        .drop = pool_drop,
        .ctx = e,
    };
    int r = seda_stage_create(fs->rt, &so, &e->stage);
    if (r < 0) {
        free(e);
        return r;
    }
    fs->pool_stage = e->stage;
    *out = e;
    return 0;
}

static void threads_stop(struct seda__file_engine *e)
{
    seda_stage_destroy(e->stage, SEDA_SHUTDOWN_HAND_BACK); /* -EPIPE if the runtime did it */
}

static void threads_destroy(struct seda__file_engine *e)
{
    seda_stage_release(e->stage);
    free(e);
}

static int threads_prep(struct seda__file_engine *e, seda__file_req_t *r)
{
    return seda_stage_enqueue(e->stage, r);
}

const struct seda__file_engine_ops seda__file_threads_ops = {
    .kind = SEDA_DISK_THREADS,
    .any_thread = 1,
    .create = threads_create,
    .stop = threads_stop,
    .destroy = threads_destroy,
    .prep = threads_prep,
};
