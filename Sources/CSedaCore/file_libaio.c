/*
 * The libaio engine: Linux native AIO (io_submit / io_getevents), one AIO
 * context per file stage, completions signalled on an eventfd
 * (io_set_eventfd on every iocb), which the stage's home worker watches.
 *
 * O_DIRECT only. Linux AIO is asynchronous only for O_DIRECT files: on a
 * buffered file io_submit does the whole read or write before it returns,
 * blocking the submitting thread. So this engine opens every file with
 * O_DIRECT, takes aligned requests only (file.h, "Alignment"), and hands any
 * file whose file system refuses O_DIRECT to the thread pool (with a logged
 * warning). Even with O_DIRECT, io_submit may block where the file system
 * must allocate blocks (writes that extend a file, or fill holes): write
 * into preallocated files for the full effect.
 *
 * Cancellation: Linux AIO cannot cancel disk I/O (io_cancel answers -EINVAL
 * for it), so a close waits for the file's requests in the kernel to
 * complete; only those not yet submitted are cancelled.
 *
 * Fsync and fdatasync go through the context too (IOCB_CMD_FSYNC/FDSYNC,
 * Linux 4.18); an older kernel completes them with -EINVAL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libaio.h>

#include "file_internal.h"

_Static_assert(sizeof(struct iocb) <= sizeof(((seda__file_req_t *)0)->engine_area),
               "a request's engine area holds a struct iocb");

struct seda__file_engine {
    struct seda_file_stage *fs;
    io_context_t ctx;
    int efd;
    uint32_t depth;
    struct iocb **pending; /* prepared, not yet submitted (submitter only) */
    unsigned npending;
};

static int aio_create(struct seda_file_stage *fs, struct seda__file_engine **out)
{
    struct seda__file_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->fs = fs;
    e->depth = fs->opts.queue_depth;
    e->pending = calloc(e->depth, sizeof *e->pending);
    int r = e->pending ? io_setup((int)e->depth, &e->ctx) : -ENOMEM; /* libaio returns -errno */
    if (r == 0) {
        e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (e->efd < 0) {
            r = -errno;
            io_destroy(e->ctx);
        }
    }
    if (r < 0) {
        free(e->pending);
        free(e);
        return r;
    }
    *out = e;
    return 0;
}

static void aio_destroy(struct seda__file_engine *e)
{
    io_destroy(e->ctx);
    close(e->efd);
    free(e->pending);
    free(e);
}

static int aio_prep(struct seda__file_engine *e, seda__file_req_t *r)
{
    seda_file_event_t *ev = &r->ev;
    if (ev->op < SEDA_FILE_READ || ev->op > SEDA_FILE_FDATASYNC)
        return -EINVAL; /* never: open and close go to the pool */
    /* Also bounds `pending`. */
    if (atomic_load_explicit(&e->fs->in_kernel, memory_order_relaxed) >= (int64_t)e->depth)
        return -EAGAIN;
    struct iocb *cb = (struct iocb *)(void *)r->engine_area;
    int fd = ev->file->fd;
    switch (ev->op) {
    case SEDA_FILE_READ: io_prep_pread(cb, fd, ev->buf, ev->len, (long long)ev->offset); break;
    case SEDA_FILE_WRITE: io_prep_pwrite(cb, fd, ev->buf, ev->len, (long long)ev->offset); break;
    case SEDA_FILE_FSYNC: io_prep_fsync(cb, fd); break;
    default: io_prep_fdsync(cb, fd); break;
    }
    io_set_eventfd(cb, e->efd);
    cb->data = r;
    e->pending[e->npending++] = cb;
    return 0;
}

static int aio_flush(struct seda__file_engine *e)
{
    int submitted = 0;
    unsigned i = 0;
    while (i < e->npending) {
        int r = io_submit(e->ctx, (long)(e->npending - i), e->pending + i);
        if (r > 0) {
            i += (unsigned)r;
            submitted += r;
        } else if (r == 0 || r == -EAGAIN || r == -EINTR) {
            break; /* the kernel is short of resources: the rest stay prepared */
        } else {
            /* io_submit refused the first iocb (-EBADF, -EINVAL, ...): it
             * fails alone, the rest go on. */
            seda__file_kernel_done(e->fs, e->pending[i]->data, r);
            i++;
        }
    }
    e->npending -= i;
    memmove(e->pending, e->pending + i, e->npending * sizeof *e->pending);
    return e->npending ? -EAGAIN : submitted;
}

static int aio_completion_fd(struct seda__file_engine *e)
{
    return e->efd;
}

static size_t aio_reap(struct seda__file_engine *e)
{
    enum { CHUNK = 64 };
    /* The eventfd first: a completion after this read signals it again. */
    uint64_t v;
    (void)!read(e->efd, &v, sizeof v); /* EAGAIN: nothing signalled since the last read */
    size_t total = 0;
    for (;;) {
        struct io_event evs[CHUNK];
        struct timespec zero = { 0, 0 };
        int n = io_getevents(e->ctx, 0, CHUNK, evs, &zero);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++)
            seda__file_kernel_done(e->fs, evs[i].data,
                                   (long)evs[i].res); /* -errno encoded in res */
        total += (size_t)n;
        if (n < CHUNK)
            break;
    }
    return total;
}

const struct seda__file_engine_ops seda__file_libaio_ops = {
    .kind = SEDA_DISK_LIBAIO,
    .needs_direct = 1,
    .create = aio_create,
    .destroy = aio_destroy,
    .prep = aio_prep,
    .flush = aio_flush,
    .completion_fd = aio_completion_fd,
    .reap = aio_reap,
};
