/*
 * Private to the C core: the file stage (file.c), its buffer pool
 * (file_buffers.c) and its engines (file_uring.c, file_libaio.c,
 * file_threads.c) behind one ops table.
 *
 * A request's life:
 *
 *   seda_file_read (any thread)           accepted: pending++, file ref++,
 *                                         held on the stage (drain waits)
 *     -> the file's route: the submission stage "<name>" (io_uring,
 *        libaio), bound to the stage's home worker, or the pool
 *        "<name>.pool" (threads, open, close)
 *     -> seda__file_precheck: closing? fault armed? (else fails it here)
 *     -> ops->prep, then one ops->flush per handler batch (io_uring_enter,
 *        io_submit); a full engine leaves requests in the backlog
 *     -> the kernel; its completion is signalled on ops->completion_fd,
 *        which the home worker's loop watches
 *     -> ops->reap on that loop (file.c, on_completions) calls
 *        seda__file_kernel_done for each completion; the backlog moves
 *     -> seda__file_complete: result, counters, pending--
 *     -> delivery to the sink (parked and retried from the home loop's
 *        timer while it is full); unheld once delivered
 *     -> file ref--; the last reference of a closing file closes it and
 *        delivers its CLOSE completion
 *
 * The home worker. Every file stage belongs to one shared thread of the
 * runtime (options bind_to_thread / thread_index, else spread round robin):
 * its submission stage is bound there, its loop watches the completion fd,
 * runs the retry timer and, when the runtime stops, finishes what the
 * kernel holds. Submitter and reaper are one thread, so the engine's
 * submission and completion sides need no lock and no fence between them,
 * and the io_uring ring can be SINGLE_ISSUER | DEFER_TASKRUN.
 */
#ifndef SEDA_FILE_INTERNAL_H
#define SEDA_FILE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"
#include "loop.h"
#include "seda/file.h"

struct seda__file_engine; /* one per engine file */

/* A request; its first member is the completion event the sink receives. */
typedef struct seda__file_req {
    seda_file_event_t ev;
    struct seda__file_req *next; /* backlog or retry list */
    struct seda_file_stage *fs;
    seda_file_sink_t sink;
    char *path;                   /* OPEN */
    int open_flags;               /* OPEN */
    mode_t mode;                  /* OPEN */
    struct seda_file *owned_file; /* CLOSE: the closed file, freed with the event */
    bool holds_file_ref;          /* ev.file's reference, dropped after delivery */
    bool caller_buffer;           /* *_pooled: a refused request leaves the buffer to the caller */
    bool prechecked;              /* passed seda__file_precheck (left in the backlog) */
    /* Engine scratch (libaio's struct iocb lives here, see file_libaio.c). */
    _Alignas(16) unsigned char engine_area[64];
} seda__file_req_t;

/* An open file. */
struct seda_file {
    struct seda_file_stage *fs;
    const struct seda__file_engine_ops *ops; /* the engine serving it */
    struct seda__file_engine *engine;
    int fd;
    int direct;
    uint32_t mem_align, offset_align; /* 1 when buffered */
    /* 1 (the open file) + requests accepted and not yet delivered. The last
     * decrement closes the descriptor (see file.c, file_unref). */
    _Atomic uint32_t refs;
    /* The handle's memory: 1 (its CLOSE event, or destroy for a file never
     * closed) + seda_file_retain's. The last frees it (file_request.c,
     * seda__file_mem_unref). */
    _Atomic uint32_t mem_refs;
    /* Set by seda_file_close (API side): later calls get -EBADF. */
    _Atomic bool close_called;
    /* Set once the close is accepted or processed: requests not yet in the
     * kernel are cancelled. Read by the threads that hand requests over. */
    _Atomic bool closing;
    seda__file_req_t *close_req;   /* the CLOSE, delivered by the last reference */
    struct seda_file *prev, *next; /* the stage's open files, under files_lock */
};

/* What a file stage asks of an engine. Every call below except create,
 * register_buffers, destroy and the any_thread prep is made on the stage's
 * home worker (the submission stage's handler, the loop's watcher, timer
 * and tasks), or by destroy once that thread is gone. */
struct seda__file_engine_ops {
    int kind; /* enum seda_disk_engine */
    /* 1: prep may be called from any thread (requests go straight to the
     * engine, without the submission stage) and the engine completes them on
     * its own threads (no completion fd). */
    int any_thread;
    /* 1: files must be O_DIRECT (libaio); a file that cannot be is served by
     * the thread pool. */
    int needs_direct;
    int (*create)(struct seda_file_stage *fs, struct seda__file_engine **out);
    /* On the home worker, before its first prep: binds the engine to that
     * thread (io_uring: enables a ring created disabled). NULL if nothing
     * to do. Returns 0 or a negative errno (the stage then fails requests). */
    int (*start)(struct seda__file_engine *e);
    /* Stops taking requests and hands back the queued ones (threads); NULL
     * for engines whose kernel side is drained by the file stage. */
    void (*stop)(struct seda__file_engine *e);
    void (*destroy)(struct seda__file_engine *e);
    /* Takes a read, write or sync: 0 (will be submitted by the next flush),
     * -EAGAIN (full: retry after completions), or another negative errno
     * (refused: the caller completes the request with it). */
    int (*prep)(struct seda__file_engine *e, seda__file_req_t *r);
    /* Submits what prep took. Returns how many went to the kernel, or a
     * negative errno (nothing went; the requests stay prepared). Requests
     * the kernel refuses one by one are completed with their error. */
    int (*flush)(struct seda__file_engine *e);
    /* Readable when completions are ready; -1 if the engine has none. */
    int (*completion_fd)(struct seda__file_engine *e);
    /* Resets the completion fd and reaps every completion ready, without
     * blocking, calling seda__file_kernel_done for each; a completion that
     * arrives meanwhile either is reaped too or signals the fd again.
     * Returns how many. */
    size_t (*reap)(struct seda__file_engine *e);
    /* Asks the kernel to cancel every request in flight on fd (best effort;
     * NULL if it cannot). */
    void (*cancel_fd)(struct seda__file_engine *e, int fd);
    /* Registers [base, base+len) for fixed-buffer I/O; NULL if unsupported. */
    int (*register_buffers)(struct seda__file_engine *e, void *base, size_t len);
};

extern const struct seda__file_engine_ops seda__file_uring_ops;
extern const struct seda__file_engine_ops seda__file_libaio_ops;
extern const struct seda__file_engine_ops seda__file_threads_ops;

/* ---- the aligned buffer pool (file_buffers.c) ---------------------------- */

#define SEDA__FILE_CLASSES 9 /* 4 KiB << 0..8: up to 1 MiB */

struct seda__file_buffers {
    unsigned char *base; /* the arena (mmap), NULL if none */
    size_t size;
    size_t used;       /* bump pointer, under lock */
    uint8_t *class_of; /* per 4 KiB page of the arena: class + 1 at a buffer's start, else 0 */
    void *free_list[SEDA__FILE_CLASSES]; /* next pointer in each free buffer's first word */
    pthread_mutex_t lock;
    _Atomic uint64_t outstanding, heap;
};

int seda__file_buffers_init(struct seda__file_buffers *b, size_t arena_bytes);
void seda__file_buffers_fini(struct seda__file_buffers *b);
void *seda__file_buffers_alloc(struct seda__file_buffers *b, size_t len);
void seda__file_buffers_free(struct seda__file_buffers *b, void *buf);
/* 1 if [buf, buf+len) lies in the arena. */
static inline bool seda__file_buffers_in_arena(const struct seda__file_buffers *b, const void *buf,
                                               size_t len)
{
    const unsigned char *p = buf;
    return b->base && p >= b->base && len <= b->size && (size_t)(p - b->base) <= b->size - len;
}

/* ---- the file stage ------------------------------------------------------ */

struct seda_file_stage {
    seda_runtime_t *rt;
    char name[48];
    seda_file_stage_options_t opts; /* name points at `name` */

    const struct seda__file_engine_ops *ops; /* the stage's engine */
    struct seda__file_engine *engine;
    struct seda__file_engine *pool; /* the threads engine (open, close, fallbacks) */
    seda_stage_t *submit;           /* NULL on the threads engine */
    seda_stage_t *pool_stage;       /* set by the threads engine */
    /* Where accepted requests are held until delivered (the drain waits for
     * them): the submission stage, or the pool on the threads engine. */
    seda_stage_t *hold;

    struct seda__file_buffers buffers;
    int buffers_registered;

    /* The home worker (see the top of this file). */
    struct seda__loop *home;
    uint32_t home_index;

    /* ---- Home worker only (or destroy, once that thread is gone) ---- */
    seda__file_req_t *backlog_head, *backlog_tail;
    bool flush_failed;             /* a flush is owed */
    bool attached;                 /* started on the home loop: watching, exit task set */
    bool detached;                 /* done with the home loop for good */
    bool stopping;                 /* destroy asked: finish what the kernel holds, then detach */
    bool watch_failed;             /* the poller refused the fd: the timer reaps */
    struct seda__watcher watcher;  /* the completion fd */
    struct seda__loop_timer tick;  /* retries: parked completions, flushes */
    struct seda__task attach_task; /* posted at create */
    struct seda__task arm_task;    /* posted to start the tick from another thread */
    struct seda__task detach_task; /* posted by destroy */
    struct seda__task exit_task;   /* the loop exits with the stage attached */

    /* Requests prepared for the kernel and not yet reaped. Written on the
     * home worker only; read by statistics (relaxed). */
    _Atomic int64_t in_kernel;
    /* The tick is running or about to (arm_tick). Pairs with retry_count
     * (seda__file_arm_tick and the tick). */
    _Atomic bool tick_armed;
    /* arm_task is in the home loop's inbox (set by the poster, cleared when
     * it starts running): one node, one post at a time. */
    _Atomic bool arm_posted;
    /* Set by destroy before it posts detach_task: from then on nothing new
     * is posted to the home loop. Release/acquire. */
    _Atomic bool no_posts;
    /* Set on the home worker when it has detached after detach_task (or at
     * its exit with detach_task already run): destroy waits for it. */
    _Atomic bool detach_done;

    /* Completions whose sink was full, retried by the tick. */
    pthread_mutex_t retry_lock;
    seda__file_req_t *retry_head, *retry_tail;
    _Atomic uint64_t retry_count;

    /* The open files, for destroy. */
    pthread_mutex_t files_lock;
    struct seda_file *files;

    /* Fault injection (seda_file_stage_inject_fault), under fault_lock; the
     * mask is also read without it (relaxed) as the fast-path test. */
    pthread_mutex_t fault_lock;
    _Atomic uint32_t fault_mask;
    uint64_t fault_nth, fault_seen;
    uint32_t fault_count;
    int fault_error;

    _Atomic bool warned_alignment;
    _Atomic bool destroying;
    /* The stage's memory (and its buffer arena): 1 (the application's
     * handle) + completion events not yet released + pooled buffers the
     * application holds + retained file handles. The last frees it
     * (seda__file_stage_unref). */
    _Atomic uint64_t refs;
    _Atomic uint64_t events_live; /* completion events not yet released (statistics) */

    _Atomic uint64_t accepted, completed, failed, canceled, bytes_read, bytes_written;
    _Atomic uint64_t submit_calls, pending, delivery_retries, undeliverable, direct_fallbacks;
    _Atomic uint64_t files_open, reap_calls;
};

/* Logs a line through opts.log (or stderr), printf style. */
void seda__file_log(struct seda_file_stage *fs, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Called where a request would go to the kernel (or run on the pool): fails
 * it with -ECANCELED if its file is closing, or with the armed fault. Returns
 * true if the request should go on. */
bool seda__file_precheck(seda__file_req_t *r);

/* The result of a request is known: counts it and delivers the completion
 * (then drops the file reference the request held). Any thread. */
void seda__file_complete(seda__file_req_t *r, int64_t result);

/* seda__file_complete for a request the engine had taken (prep) and the
 * kernel completed: also lowers in_kernel. Called by ops->reap (and a
 * flush that the kernel refuses one request of), before r is touched. */
void seda__file_kernel_done(struct seda_file_stage *fs, seda__file_req_t *r, int64_t result);

/* Runs an OPEN (open(2), O_DIRECT and its fallback, the new handle) and
 * completes it. On the pool. */
void seda__file_do_open(seda__file_req_t *r);

/* Processes a CLOSE on the file's route: cancels what has not reached the
 * kernel, asks the kernel to cancel the rest, drops the open reference. */
void seda__file_do_close(seda__file_req_t *r);

/* Drops a request's reference on its file (the last one closes it). */
void seda__file_unref(struct seda_file *f);

/* Drops a reference on a file handle's memory (the last frees it). */
void seda__file_mem_unref(struct seda_file *f);

/* Drops one of the stage's refs; the last frees it (file.c). */
void seda__file_stage_unref(struct seda_file_stage *fs);

/* Makes sure the home loop's tick will run (file.c): after parking a
 * completion (a seq_cst raise of retry_count first). Any thread. */
void seda__file_arm_tick(struct seda_file_stage *fs);

/* Retries the parked completions once. Returns how many were tried. */
size_t seda__file_retry_parked(struct seda_file_stage *fs);

/* Destroy: delivers every parked completion, waiting up to timeout_ns per
 * sink for room (else undeliverable). */
void seda__file_deliver_parked_waiting(struct seda_file_stage *fs, int64_t timeout_ns);

/* Whether the armed fault hits an O_DIRECT open (SEDA_FILE_FAULT_NO_DIRECT). */
bool seda__file_fault_no_direct(struct seda_file_stage *fs);

#endif /* SEDA_FILE_INTERNAL_H */
