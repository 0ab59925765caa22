/*
 * The io_uring engine: one ring per file stage.
 *
 * Why a ring of its own, and not the worker's poller ring: the poller's
 * rings are SINGLE_ISSUER | DEFER_TASKRUN, owned by one worker each, while
 * file requests come from any thread through the submission stage, whose
 * handler runs on whichever shared thread picks it up. Sharing a worker's
 * ring would need a post to that worker per batch (a cross-thread hop the
 * stage's batching exists to avoid). Here the submission queue has one
 * producer at a time (the submission stage has concurrency 1) and the
 * completion queue one consumer (the reaper), so neither side takes a lock.
 * The cost: without DEFER_TASKRUN, the kernel runs a completion's task work
 * on the thread that submitted it, waking it if it sleeps. Once worker loops
 * exist, a per-worker disk ring submitted and reaped by its own worker could
 * take DEFER_TASKRUN too (docs/design/io.md, section 5).
 *
 * The ring: depth SQ entries (requests in the kernel at most), a CQ twice
 * that (the kernel's default) so that cancellations have room beside a full
 * load, IORING_SETUP_SUBMIT_ALL so one bad SQE does not stop the rest of a
 * batch. Completions signal an eventfd (io_uring_register_eventfd): that is
 * the descriptor a worker loop will watch.
 *
 * Registered buffers: the buffer pool's arena can be registered as one fixed
 * buffer, and requests whose bytes lie in it use READ_FIXED / WRITE_FIXED,
 * which skip pinning and unpinning the pages per request. seda-bench disk
 * measures both (--registered).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "file_internal.h"

struct seda__file_engine {
    struct seda_file_stage *fs;
    struct io_uring ring;
    int efd;
    uint32_t depth; /* requests in the kernel, at most */
    uint32_t cq_entries;
    unsigned unsubmitted; /* SQEs prepared since the last flush (submitter only) */
    /* Cancel SQEs not yet reaped: raised by the submitter, lowered by the
     * reaper; only bounds how many cancels may be outstanding (relaxed). */
    _Atomic int64_t cancels;
    const unsigned char *fixed_base;
    size_t fixed_len;
};

static char cancel_tag; /* user_data of cancel SQEs */

static int uring_create(struct seda_file_stage *fs, struct seda__file_engine **out)
{
    struct seda__file_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->fs = fs;
    e->depth = fs->opts.queue_depth;
    struct io_uring_params p = { .flags = IORING_SETUP_SUBMIT_ALL };
    int r = io_uring_queue_init_params(e->depth, &e->ring, &p);
    if (r == -EINVAL) { /* before 5.18 */
        struct io_uring_params plain = { 0 };
        p = plain;
        r = io_uring_queue_init_params(e->depth, &e->ring, &p);
    }
    if (r < 0) {
        free(e);
        return r;
    }
    e->cq_entries = p.cq_entries;
    e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->efd < 0) {
        r = -errno;
    } else {
        r = io_uring_register_eventfd(&e->ring, e->efd);
        if (r < 0)
            close(e->efd);
    }
    if (r < 0) {
        io_uring_queue_exit(&e->ring);
        free(e);
        return r;
    }
    *out = e;
    return 0;
}

static void uring_destroy(struct seda__file_engine *e)
{
    io_uring_queue_exit(&e->ring);
    close(e->efd);
    free(e);
}

static int uring_prep(struct seda__file_engine *e, seda__file_req_t *r)
{
    /* seq_cst: the capacity check of the Dekker pair in file.c
     * (submit_backlog / seda__file_stage_reap). */
    seda_file_event_t *ev = &r->ev;
    if (ev->op < SEDA_FILE_READ || ev->op > SEDA_FILE_FDATASYNC)
        return -EINVAL; /* never: open and close go to the pool */
    if (atomic_load(&e->fs->in_kernel) >= (int64_t)e->depth)
        return -EAGAIN;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe)
        return -EAGAIN; /* cancels fill the SQ until the next flush */
    int fd = ev->file->fd;
    const unsigned char *p = ev->buf;
    bool fixed = e->fixed_base && p >= e->fixed_base && ev->len <= e->fixed_len &&
                 (size_t)(p - e->fixed_base) <= e->fixed_len - ev->len;
    switch (ev->op) {
    case SEDA_FILE_READ:
        if (fixed)
            io_uring_prep_read_fixed(sqe, fd, ev->buf, (unsigned)ev->len, ev->offset, 0);
        else
            io_uring_prep_read(sqe, fd, ev->buf, (unsigned)ev->len, ev->offset);
        break;
    case SEDA_FILE_WRITE:
        if (fixed)
            io_uring_prep_write_fixed(sqe, fd, ev->buf, (unsigned)ev->len, ev->offset, 0);
        else
            io_uring_prep_write(sqe, fd, ev->buf, (unsigned)ev->len, ev->offset);
        break;
    case SEDA_FILE_FSYNC: io_uring_prep_fsync(sqe, fd, 0); break;
    default: io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC); break;
    }
    io_uring_sqe_set_data(sqe, r);
    e->unsubmitted++;
    return 0;
}

static int uring_flush(struct seda__file_engine *e)
{
    if (!e->unsubmitted)
        return 0;
    int r = io_uring_submit(&e->ring);
    if (r < 0)
        return r;
    e->unsubmitted = (unsigned)r >= e->unsubmitted ? 0 : e->unsubmitted - (unsigned)r;
    return r;
}

static int uring_completion_fd(struct seda__file_engine *e)
{
    return e->efd;
}

static size_t uring_reap(struct seda__file_engine *e, size_t max)
{
    enum { CHUNK = 64 };
    size_t total = 0;
    while (total < max) {
        struct io_uring_cqe *cqes[CHUNK];
        size_t want = max - total < CHUNK ? max - total : CHUNK;
        unsigned n = io_uring_peek_batch_cqe(&e->ring, cqes, (unsigned)want);
        if (!n)
            break;
        void *data[CHUNK];
        int res[CHUNK];
        for (unsigned i = 0; i < n; i++) {
            data[i] = io_uring_cqe_get_data(cqes[i]);
            res[i] = cqes[i]->res;
        }
        /* Give the CQ slots back before delivering (which may take a while). */
        io_uring_cq_advance(&e->ring, n);
        for (unsigned i = 0; i < n; i++) {
            if (data[i] == &cancel_tag) {
                atomic_fetch_sub_explicit(&e->cancels, 1, memory_order_relaxed);
                continue;
            }
            seda__file_kernel_done(e->fs, data[i], res[i]);
            total++;
        }
    }
    return total;
}

static void uring_cancel_fd(struct seda__file_engine *e, int fd)
{
    /* Best effort: only while the CQ has room for the cancel's own CQE. */
    int64_t busy =
        atomic_load(&e->fs->in_kernel) + atomic_load_explicit(&e->cancels, memory_order_relaxed);
    if (busy + 1 > (int64_t)e->cq_entries)
        return;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe)
        return;
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, &cancel_tag);
    atomic_fetch_add_explicit(&e->cancels, 1, memory_order_relaxed);
    e->unsubmitted++;
}

static int uring_register_buffers(struct seda__file_engine *e, void *base, size_t len)
{
    struct iovec iov = { .iov_base = base, .iov_len = len };
    int r = io_uring_register_buffers(&e->ring, &iov, 1);
    if (r == 0) {
        e->fixed_base = base;
        e->fixed_len = len;
    }
    return r;
}

const struct seda__file_engine_ops seda__file_uring_ops = {
    .kind = SEDA_DISK_IO_URING,
    .create = uring_create,
    .destroy = uring_destroy,
    .prep = uring_prep,
    .flush = uring_flush,
    .completion_fd = uring_completion_fd,
    .reap = uring_reap,
    .cancel_fd = uring_cancel_fd,
    .register_buffers = uring_register_buffers,
};
