/*
 * The io_uring engine: one ring per file stage, submitted and reaped on the
 * stage's home worker.
 *
 * The ring belongs to one thread: the home worker's submission handler
 * fills and submits it, the same worker's loop reaps it when its eventfd
 * (io_uring_register_eventfd) becomes readable. So it is created
 * IORING_SETUP_SINGLE_ISSUER, disabled (R_DISABLED) by the creating thread,
 * which registers the eventfd and the buffers, and enabled by the home
 * worker (start), which SINGLE_ISSUER then binds it to.
 *
 * Not DEFER_TASKRUN, though submitter and reaper are one thread. With it,
 * completions wait as work queued for the submitter until it enters the
 * ring, and the kernel signals the eventfd when the first of a batch is
 * queued and again when entering posts their CQEs. Two ways to reap were
 * tried: (1) enter (get_events), reset the eventfd, take the CQEs, and go
 * round again while IORING_SQ_TASKRUN says work is left (one enter runs 20
 * items at most): on 6.18 it spun for good, the flag set with no work
 * queued and nothing in flight; (2) reset the eventfd, then one enter that
 * waits for in_kernel completions with a zero timeout (it runs that many
 * items), then take: correct, but its own CQE post leaves the eventfd
 * readable, one empty reap more per batch, and it measured worse: 4 KiB
 * random reads at QD1, three rounds on a loaded 2-CPU VM, 1.2-2.5k IOPS and
 * 70-98 us of CPU per I/O, against 3.0-4.2k and 31-58 us for SINGLE_ISSUER
 * alone (QD32 reads and writes: equal within the noise). SEDA_DISK_URING_SETUP
 * =defer keeps (2) selectable for measuring it again.
 *
 * Why a ring per file stage and not the home worker's poller ring (when the
 * runtime's poller is io_uring): docs/design/io.md section 5.
 *
 * The ring: depth SQ entries (requests in the kernel at most), a CQ twice
 * that (the kernel's default) so that cancellations have room beside a full
 * load, IORING_SETUP_SUBMIT_ALL so one bad SQE does not stop the rest of a
 * batch.
 *
 * Registered buffers: the buffer pool's arena can be registered as one fixed
 * buffer, and requests whose bytes lie in it use READ_FIXED / WRITE_FIXED,
 * which skip pinning and unpinning the pages per request. seda-bench disk
 * measures both (--registered).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "file_internal.h"

struct seda__file_engine {
    struct seda_file_stage *fs;
    struct io_uring ring;
    int efd;
    bool disabled;   /* created R_DISABLED: start enables it */
    int start_error; /* why enabling failed: every request completes with it */
    bool defer;      /* DEFER_TASKRUN: reap asks for the completion work */
    uint32_t depth;  /* requests in the kernel, at most */
    uint32_t cq_entries;
    unsigned unsubmitted; /* SQEs prepared since the last flush (submitter only) */
    /* Cancel SQEs not yet reaped (home worker only; relaxed). */
    _Atomic int64_t cancels;
    const unsigned char *fixed_base;
    size_t fixed_len;
};

static char cancel_tag; /* user_data of cancel SQEs */

/*
 * The ring's setup. The default, SINGLE_ISSUER (6.0), tells the kernel one
 * thread submits (it skips locking on that path); without it (older
 * kernels), a plain ring. DEFER_TASKRUN is measured, not used: see the top
 * of this file. SEDA_DISK_URING_SETUP=single|plain|defer chooses one (for
 * measuring them: seda-bench disk; the tests run every one).
 */
enum { SETUP_SINGLE, SETUP_PLAIN, SETUP_BARE, SETUP_DEFER, SETUPS };
static const unsigned setups[SETUPS] = {
    [SETUP_SINGLE] = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED,
    [SETUP_PLAIN] = IORING_SETUP_SUBMIT_ALL, /* 5.18 */
    [SETUP_BARE] = 0,
    [SETUP_DEFER] = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                    IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED, /* 6.1 */
};

static int uring_create(struct seda_file_stage *fs, struct seda__file_engine **out)
{
    struct seda__file_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->fs = fs;
    e->depth = fs->opts.queue_depth;
    /* The default falls back along single, plain, bare; a forced setup
     * does not fall back. */
    int first = SETUP_SINGLE, last = SETUP_BARE;
    const char *forced = getenv("SEDA_DISK_URING_SETUP");
    if (forced && *forced) {
        if (strcmp(forced, "defer") == 0)
            first = last = SETUP_DEFER;
        else if (strcmp(forced, "plain") == 0)
            first = last = SETUP_PLAIN;
        else if (strcmp(forced, "single") == 0)
            first = last = SETUP_SINGLE;
    }
    struct io_uring_params p;
    int r = -EINVAL;
    for (int i = first; i <= last && r == -EINVAL; i++) { /* -EINVAL: a flag this kernel lacks */
        memset(&p, 0, sizeof p);
        p.flags = setups[i];
        r = io_uring_queue_init_params(e->depth, &e->ring, &p);
    }
    if (r < 0) {
        free(e);
        return r;
    }
    e->cq_entries = p.cq_entries;
    e->disabled = (p.flags & IORING_SETUP_R_DISABLED) != 0;
    e->defer = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
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

static int uring_start(struct seda__file_engine *e)
{
    if (!e->disabled)
        return 0;
    /* liburing 2.3 declares io_uring_enable_rings but does not export it. */
    int r = io_uring_register(e->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (r == 0)
        e->disabled = false;
    else
        e->start_error = r;
    return r;
}

static void uring_destroy(struct seda__file_engine *e)
{
    io_uring_queue_exit(&e->ring);
    close(e->efd);
    free(e);
}

static int uring_prep(struct seda__file_engine *e, seda__file_req_t *r)
{
    seda_file_event_t *ev = &r->ev;
    if (ev->op < SEDA_FILE_READ || ev->op > SEDA_FILE_FDATASYNC)
        return -EINVAL; /* never: open and close go to the pool */
    if (e->disabled)    /* start failed (seda__file_log said why) */
        return e->start_error;
    if (atomic_load_explicit(&e->fs->in_kernel, memory_order_relaxed) >= (int64_t)e->depth)
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

/* Takes every CQE the ring holds; returns how many requests completed. */
static size_t take_cqes(struct seda__file_engine *e)
{
    enum { CHUNK = 64 };
    size_t total = 0;
    for (;;) {
        struct io_uring_cqe *cqes[CHUNK];
        unsigned n = io_uring_peek_batch_cqe(&e->ring, cqes, CHUNK);
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

static void drain_eventfd(struct seda__file_engine *e)
{
    uint64_t v;
    (void)!read(e->efd, &v, sizeof v); /* EAGAIN: nothing signalled since the last read */
}

static size_t uring_reap(struct seda__file_engine *e)
{
    /* The eventfd first: a completion queued after this read signals it
     * again, so none is left unnoticed. */
    drain_eventfd(e);
    if (e->defer) {
        /* DEFER_TASKRUN: the completions wait as work queued for this
         * thread; one io_uring_enter (GETEVENTS, a zero timeout) runs all
         * of it: it runs max(20, wait_nr) items, and each request in the
         * kernel has at most one queued. Posting their CQEs signals the
         * eventfd once more: the next poll finds it readable and reaps
         * nothing, the price of never missing one. (Looping on
         * IORING_SQ_TASKRUN instead was measured to spin: the kernel may
         * leave the flag set with no work queued.) */
        int64_t waiting = atomic_load_explicit(&e->fs->in_kernel, memory_order_relaxed) +
                          atomic_load_explicit(&e->cancels, memory_order_relaxed);
        if (waiting > 0) {
            struct __kernel_timespec zero = { 0, 0 };
            struct io_uring_cqe *cqe;
            unsigned nr = waiting > (int64_t)e->cq_entries ? e->cq_entries : (unsigned)waiting;
            /* Times out when fewer than nr are done: as expected. */
            (void)io_uring_wait_cqes(&e->ring, &cqe, nr, &zero, NULL);
        }
    }
    return take_cqes(e);
}

static void uring_cancel_fd(struct seda__file_engine *e, int fd)
{
    /* Best effort: only while the CQ has room for the cancel's own CQE. */
    int64_t busy = atomic_load_explicit(&e->fs->in_kernel, memory_order_relaxed) +
                   atomic_load_explicit(&e->cancels, memory_order_relaxed);
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
    .start = uring_start,
    .destroy = uring_destroy,
    .prep = uring_prep,
    .flush = uring_flush,
    .completion_fd = uring_completion_fd,
    .reap = uring_reap,
    .cancel_fd = uring_cancel_fd,
    .register_buffers = uring_register_buffers,
};
