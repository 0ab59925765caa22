/*
 * Async disk: the file stage (Sandstorm's AFile).
 *
 * Open, read, write, sync and close are requests made to a file stage; each
 * request's completion (a byte count, or a negative errno) arrives later as
 * one event, a seda_file_event_t, on the sink the request named: a stage
 * (seda_stage_enqueue) or a deliver callback. Reads and writes name their
 * offset: there is no seek position shared between requests, and any number
 * of them may be in flight on one file at once.
 *
 * Engines (docs/design/io.md section 5), chosen when the stage is created:
 *
 *  - io_uring: one ring per file stage. Requests are prepared into the
 *    ring's submission queue by the stage's handler and submitted with one
 *    io_uring_enter per handler batch; completions are reaped from the ring,
 *    which signals an eventfd. Buffered and O_DIRECT files alike.
 *  - libaio: io_submit / io_getevents, completions signalled on an eventfd.
 *    Linux AIO is asynchronous only with O_DIRECT (on a buffered file
 *    io_submit blocks until the I/O is done), so this engine opens every file
 *    with O_DIRECT and takes aligned requests only (see "Alignment").
 *  - threads: pread / pwrite / fsync on a dedicated pool stage of the runtime
 *    ("<name>.pool"), sized by the caller (options.threads, max_threads) and
 *    resizable at run time (seda_file_stage_set_threads, or a thread governor
 *    watching seda_file_stage_pool). Works everywhere.
 *
 * Choice: options.engine; if SEDA_DISK_DEFAULT, the SEDA_DISK environment
 * variable ("io_uring", "libaio" or "threads"); if unset, io_uring. An engine
 * the kernel refuses (no io_uring, no AIO) falls back to the next one in the
 * order io_uring, libaio, threads, with a warning through options.log.
 *
 * O_DIRECT. A file opened with O_DIRECT (or any file on the libaio engine)
 * on a file system that refuses it (ramfs, some FUSE and network file
 * systems) is opened buffered instead, with a warning through options.log:
 * on the libaio engine it is then served by the thread pool (libaio would
 * block on it), on io_uring it stays on the ring (buffered I/O is
 * asynchronous there), on threads nothing changes.
 *
 * Alignment. A request on an O_DIRECT file whose offset, length or buffer
 * address is not a multiple of the file's alignment (seda_file_alignment:
 * the file system's direct-I/O alignment, 4096 when it does not say) is
 * refused with -EINVAL when it is made, with a warning through options.log
 * (once per file stage). Nothing is bounced: a bounce buffer would turn
 * each unaligned write into a read-modify-write of the blocks around it,
 * racing the other writes in flight. Buffers from seda_file_buffer_alloc
 * are always aligned (SEDA_FILE_BUFFER_ALIGN).
 *
 * Errors are events. Whatever happens to an accepted request, exactly one
 * completion event is delivered for it: end of file shows as a short read (a
 * result below the length asked, 0 at or past the end); open errors (-ENOENT,
 * -EACCES, -EISDIR, ...) and I/O errors (-ENOSPC, -EIO, -EISDIR on reading a
 * directory, ...) as a negative result. A request accepted on a file that is
 * then closed before the request reached the kernel (or the pool) fails with
 * -ECANCELED; one already in the kernel either completes or fails with
 * -ECANCELED, as the kernel decides. The close's completion comes after
 * every other completion of the file. A request that cannot be accepted is
 * refused by the call itself (negative return) and no event ever comes.
 *
 * The home worker. A file stage belongs to one shared thread of the runtime
 * (options.bind_to_thread / thread_index, else the runtime spreads its file
 * stages over its shared threads, round robin; seda_file_stage_thread says
 * which): that thread submits the io_uring and libaio requests (a stage
 * bound to it) and its worker loop reaps their completions (it watches the
 * engine's eventfd in its poller) and delivers them. So a completion of
 * these engines is delivered on the home worker, and a sink stage on the
 * shared threads runs it next on that same thread, without a wake-up.
 * Give stages that do heavy disk I/O different home workers.
 *
 * Completions are delivered from the file stage's threads: the home worker
 * (io_uring, libaio), the pool (open, close, the threads engine), or the
 * submitting handler when a request fails before reaching the kernel. A
 * sink stage whose queue is full does not lose a completion: it is kept and
 * delivered again about every millisecond (a timer of the home worker's
 * loop, on the runtime's clock) until the stage takes it (completions to
 * one sink may therefore arrive out of order; they carry their own offset
 * and tag). A completion whose sink stage is gone (destroyed, runtime shut
 * down) goes to options.undeliverable, or is released.
 *
 * Shutdown. seda_runtime_shutdown with DRAIN waits for requests in flight
 * and delivers their completions (every accepted request counts as work of
 * the runtime until its completion is delivered, parked ones included).
 * With HAND_BACK, requests not yet in the kernel complete with -ECANCELED,
 * and those in the kernel are waited for by the home worker before it
 * exits; both go to options.undeliverable (the sinks are closed by then).
 * Call seda_file_stage_destroy after the runtime's shutdown, or before it,
 * to free the stage.
 *
 * Threads: every function may be called from any thread, including handlers,
 * unless its comment says otherwise.
 */
#ifndef SEDA_FILE_H
#define SEDA_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_file_stage seda_file_stage_t;
typedef struct seda_file seda_file_t;

/* The disk engines (see the top of this file). */
enum seda_disk_engine {
    SEDA_DISK_DEFAULT = 0, /* SEDA_DISK, else io_uring */
    SEDA_DISK_IO_URING = 1,
    SEDA_DISK_LIBAIO = 2,
    SEDA_DISK_THREADS = 3,
};

/* "io_uring", "libaio", "threads" ("default" for SEDA_DISK_DEFAULT), or NULL
 * for an unknown value. Static storage. */
const char *seda_disk_engine_name(int engine);

/* The engine named `name` (as seda_disk_engine_name spells it), or -EINVAL. */
int seda_disk_engine_parse(const char *name);

/* What a completion event reports. */
enum seda_file_op {
    SEDA_FILE_OPEN = 1,
    SEDA_FILE_READ = 2,
    SEDA_FILE_WRITE = 3,
    SEDA_FILE_FSYNC = 4,
    SEDA_FILE_FDATASYNC = 5,
    SEDA_FILE_CLOSE = 6,
};

/* seda_file_event_t.flags */
enum seda_file_event_flags {
    /* buf came from the stage's buffer pool and is released with the event
     * (unless taken with seda_file_event_take_buffer). */
    SEDA_FILE_EVENT_OWNS_BUFFER = 1u << 0,
};

/*
 * A completion, delivered to the request's sink as the event (a `void *`
 * pointing to this struct). The receiver owns it and must give it back with
 * seda_file_event_release (a sink stage's drop callback too). Read the
 * fields; do not write them. Never allocate one yourself.
 */
typedef struct seda_file_event {
    int op;         /* enum seda_file_op */
    uint32_t flags; /* enum seda_file_event_flags */
    /* Bytes transferred (READ: 0..len, below len only at end of file; WRITE:
     * len unless the device filled up mid-way), 0 for OPEN, FSYNC,
     * FDATASYNC and CLOSE, or a negative errno. */
    int64_t result;
    /* The file. OPEN: the new handle when result is 0, else NULL. CLOSE: the
     * closed handle (valid until this event is released; calls on it return
     * -EBADF). */
    seda_file_t *file;
    uint64_t offset;      /* READ/WRITE: where */
    void *buf;            /* READ/WRITE: the bytes (the caller's buffer, or a pooled one) */
    size_t len;           /* READ/WRITE: bytes asked */
    void *user;           /* the caller's tag, as given */
    int64_t accepted_ns;  /* CLOCK_MONOTONIC when the request was accepted */
    int64_t completed_ns; /* CLOCK_MONOTONIC when the result was known */
} seda_file_event_t;

/*
 * Gives a completion back: frees a pooled buffer it still owns and the event.
 * NULL is ignored. Any thread.
 */
void seda_file_event_release(seda_file_event_t *ev);

/*
 * Takes a pooled buffer out of a READ/WRITE completion (SEDA_FILE_EVENT_OWNS_BUFFER):
 * the caller owns it from then on and frees it with seda_file_buffer_free on
 * the same file stage (or gives it to another request: seda_file_read_pooled,
 * seda_file_write_pooled); the event keeps `buf` for reading but no longer
 * frees it. Returns the buffer, or NULL if the event owns none.
 */
void *seda_file_event_take_buffer(seda_file_event_t *ev);

/* The file stage that made ev (the one its buffer belongs to). */
seda_file_stage_t *seda_file_event_stage(const seda_file_event_t *ev);

/*
 * Where a completion goes: a stage (enqueued with seda_stage_enqueue; kept
 * and retried while the stage is full), or, when stage is NULL, a callback
 * called on a file stage thread (the home worker: a shared thread of the
 * runtime; or a pool thread), which takes ownership of the event and must
 * not block. The stage is retained from acceptance to delivery, so a sink
 * stage may be released by its creator while requests are in flight.
 */
typedef struct seda_file_sink {
    seda_stage_t *stage;
    void (*deliver)(void *ctx, seda_file_event_t *ev);
    void *ctx;
} seda_file_sink_t;

/* The runtime's SEDA_LOG_INFO and SEDA_LOG_WARNING. */
enum seda_file_log_level {
    SEDA_FILE_LOG_INFO = 1,
    SEDA_FILE_LOG_WARNING = 2,
};

/* Receives the file stage's log lines (engine fallbacks, refused requests).
 * Called from any of the stage's threads; must be thread-safe. */
typedef void (*seda_file_log_fn)(void *ctx, int level, const char *message);

typedef struct seda_file_stage_options {
    /* Names the stages: "<name>" (submission, io_uring and libaio, bound to
     * the home worker) and "<name>.pool" (the thread pool: open, close, and
     * every request on the threads engine). Unique in the runtime, at most
     * 40 bytes; copied. */
    const char *name;
    int engine; /* enum seda_disk_engine */
    /* Requests in the kernel at once (the ring's size, the AIO context's
     * size); more wait in the stage. 0: 256. At most 4096. */
    uint32_t queue_depth;
    /* Requests accepted and not yet completed, at most; past it a request is
     * refused with -EAGAIN. 0: 4096. */
    uint32_t max_pending;
    /* The pool's threads at start (0: 1; on the threads engine 0 means 4) and
     * its upper bound for seda_file_stage_set_threads (0: max(threads, 64)). */
    uint32_t threads;
    uint32_t max_threads;
    /* The aligned buffer pool's arena in bytes (0: 16 MiB); buffers beyond it
     * come from the heap (aligned too, not registered). */
    size_t buffer_pool_bytes;
    /* io_uring: register the buffer arena with the ring, so reads and writes
     * into pooled buffers skip pinning pages per request (READ_FIXED /
     * WRITE_FIXED); the arena is then resident. 0: if the kernel allows it
     * (RLIMIT_MEMLOCK bounds it for unprivileged processes), else an info
     * line in the log; 1: register, with a warning if refused; -1: never.
     * seda-bench disk --registered measures it. Ignored by the other engines. */
    int register_buffers;
    /* NULL: through the runtime's log hook (seda_runtime_options.log), the
     * file stage's name as the stage. */
    seda_file_log_fn log;
    void *log_ctx;
    /* Receives (and owns) each completion whose sink stage refused it for
     * good (-EPIPE). NULL: the event is released. */
    void (*undeliverable)(void *ctx, seda_file_event_t *ev);
    void *undeliverable_ctx;
    /* The home worker (see the top of this file): nonzero binds the stage
     * to shared thread thread_index (< seda_runtime_cpu_threads); 0 lets
     * the runtime spread its file stages over its shared threads. */
    int bind_to_thread;
    uint32_t thread_index;
} seda_file_stage_options_t;

/*
 * Creates a file stage in rt. opts->name is required. Returns 0 and the
 * handle in *out; -EINVAL (no name, name too long, queue_depth above 4096,
 * max_threads below threads, thread_index not a shared thread when
 * bind_to_thread); -EEXIST (a stage name is taken); -EPIPE
 * (runtime shut down); -ENOMEM; or the error of the last engine tried.
 * Any thread but a handler on the runtime's shared threads.
 */
int seda_file_stage_create(seda_runtime_t *rt, const seda_file_stage_options_t *opts,
                           seda_file_stage_t **out);

/*
 * Destroys a file stage: requests not yet in the kernel complete with
 * -ECANCELED, those in the kernel are waited for; every completion is
 * delivered while its sink takes it (else undeliverable), files still open
 * are closed (their handles become invalid without a CLOSE event), and the
 * stages are destroyed. Completion events still held by the application stay
 * valid; release them as usual, and so do pooled buffers the application
 * holds (free them as usual: the stage's memory and arena go with the last
 * of them) and retained file handles (seda_file_retain). Never from a handler of the runtime (it waits for the stage's threads and
 * for its home worker's loop).
 * NULL is ignored.
 */
void seda_file_stage_destroy(seda_file_stage_t *fs);

/*
 * Keeps fs's memory after seda_file_stage_destroy, until the matching
 * seda_file_stage_release: calls on it are then refused (-EPIPE; the
 * queries below still answer). For bindings whose stage objects may be used
 * by one thread while another destroys them. Any thread; the caller must
 * hold a valid handle to retain.
 */
void seda_file_stage_retain(seda_file_stage_t *fs);
/* Drops a seda_file_stage_retain. NULL is ignored. */
void seda_file_stage_release(seda_file_stage_t *fs);

/* The engine in use (never SEDA_DISK_DEFAULT). */
int seda_file_stage_engine(const seda_file_stage_t *fs);

/* The home worker: the index of the shared thread (as
 * seda_runtime_thread_index numbers them) that submits and reaps. */
uint32_t seda_file_stage_thread(const seda_file_stage_t *fs);

/* The pool stage (a reference held by the file stage: do not release it),
 * for a thread governor to watch; resize it with seda_file_stage_set_threads. */
seda_stage_t *seda_file_stage_pool(const seda_file_stage_t *fs);

/* Resizes the thread pool (1..max_threads). Returns as seda_stage_set_threads. */
int seda_file_stage_set_threads(seda_file_stage_t *fs, uint32_t n);

typedef struct seda_file_stage_stats {
    int engine;             /* enum seda_disk_engine in use */
    int buffers_registered; /* 1: the arena is registered with the ring */
    uint64_t accepted;      /* requests accepted (opens included) */
    uint64_t completed;     /* completions produced (results of any sign) */
    uint64_t failed;        /* ... of which negative, -ECANCELED included */
    uint64_t canceled;      /* ... of which -ECANCELED */
    uint64_t bytes_read, bytes_written;
    uint64_t submit_calls;        /* io_uring_enter / io_submit calls made */
    uint64_t reap_calls;          /* times the home worker reaped (woken by the eventfd) */
    uint64_t pending;             /* accepted, not yet completed, now */
    uint64_t in_kernel;           /* in the ring / AIO context now */
    uint64_t delivery_retries;    /* deliveries retried because the sink was full */
    uint64_t undeliverable;       /* completions whose sink was gone */
    uint64_t direct_fallbacks;    /* O_DIRECT refused: opened buffered */
    uint64_t events_outstanding;  /* completion events not yet released */
    uint64_t buffers_outstanding; /* pooled buffers allocated and not freed */
    uint64_t buffers_heap;        /* ... of which outside the arena */
    uint64_t files_open;          /* opened and not yet closed */
} seda_file_stage_stats_t;

/* A snapshot of the counters. */
void seda_file_stage_stats(const seda_file_stage_t *fs, seda_file_stage_stats_t *out);

/* ---- requests ---------------------------------------------------------
 * Each returns 0 when the request is accepted: exactly one completion will be
 * delivered to *sink (copied; sink->stage is retained until then). On
 * failure nothing is delivered: -EINVAL (bad argument, misaligned on an
 * O_DIRECT file, length above 0x7ffff000, O_APPEND); -EBADF (the file is
 * closing); -EAGAIN (max_pending reached, or a queue of the stage is full:
 * retry later); -EPIPE (stage destroyed or runtime stopping); -ENOMEM.
 */

/*
 * Opens `path` with open(2) flags (O_RDONLY, O_WRONLY, O_RDWR, O_CREAT,
 * O_EXCL, O_TRUNC, O_DIRECT, O_NOATIME, O_SYNC, O_DSYNC; O_CLOEXEC is always
 * added; O_APPEND is refused: requests name their offsets) and `mode` for a
 * created file. The OPEN completion carries the new handle in ev->file
 * (result 0) or the error (-ENOENT, -EACCES, -EISDIR, -EEXIST, ...). Opening
 * runs on the pool (open(2) may block on metadata).
 */
int seda_file_open(seda_file_stage_t *fs, const char *path, int flags, mode_t mode,
                   const seda_file_sink_t *sink, void *user);

/*
 * Adopts a descriptor opened elsewhere (a file opened under a directory
 * with openat2, say) as a file of fs, synchronously: no OPEN request, no
 * completion. On success returns 0 with the handle in *out, and the stage
 * owns fd from then on: it is closed by seda_file_close (after every
 * request's completion, as for an opened file) or by
 * seda_file_stage_destroy; the caller must not close it, nor change its
 * flags. The handle is the same as an OPEN completion's (valid until its
 * CLOSE event is released; seda_file_retain keeps it longer). FD_CLOEXEC is
 * set on fd, and O_NONBLOCK cleared (requests wait for the disk: io_uring
 * would fail a read that misses the page cache of an O_NONBLOCK file with
 * -EAGAIN on some file systems).
 *
 * The file keeps its other open flags. An O_DIRECT fd is served O_DIRECT (aligned
 * requests only, seda_file_alignment) by the stage's engine. A buffered fd
 * is served buffered: by the ring on io_uring, by the pool on threads, and
 * on libaio (which would block on it) by the thread pool, as an open whose
 * O_DIRECT the file system refused (seda_file_engine says which); adopt
 * never sets O_DIRECT itself.
 *
 * On failure the caller still owns fd (close it): -EINVAL (fs or out NULL,
 * fd negative, fd open with O_APPEND or O_PATH); -EBADF (fd is not open);
 * -EPIPE (stage destroyed); -ENOMEM. Any thread; it does not block.
 */
int seda_file_adopt(seda_file_stage_t *fs, int fd, seda_file_t **out);

/*
 * Reads up to len bytes at offset into buf; buf NULL: into a buffer from the
 * pool, owned by the completion event (SEDA_FILE_EVENT_OWNS_BUFFER). The
 * caller's buf must stay valid and untouched until the completion.
 */
int seda_file_read(seda_file_t *f, uint64_t offset, void *buf, size_t len,
                   const seda_file_sink_t *sink, void *user);

/* Writes len bytes from buf (not NULL; valid until the completion) at offset. */
int seda_file_write(seda_file_t *f, uint64_t offset, const void *buf, size_t len,
                    const seda_file_sink_t *sink, void *user);

/*
 * seda_file_read / seda_file_write with a buffer from seda_file_buffer_alloc
 * (or taken from an event) on f's stage, of at least len bytes, that the
 * request takes over: the completion event owns it
 * (SEDA_FILE_EVENT_OWNS_BUFFER), to be taken back with
 * seda_file_event_take_buffer or freed with the event. A buffer travels
 * from request to handler to the next request without a copy or an
 * allocation. When the call fails, the caller still owns the buffer.
 */
int seda_file_read_pooled(seda_file_t *f, uint64_t offset, void *buf, size_t len,
                          const seda_file_sink_t *sink, void *user);
int seda_file_write_pooled(seda_file_t *f, uint64_t offset, void *buf, size_t len,
                           const seda_file_sink_t *sink, void *user);

/* fsync (datasync 0) or fdatasync (datasync 1) of everything written before
 * whose completion was delivered. Requests in flight at the same time are not
 * ordered with it. */
int seda_file_sync(seda_file_t *f, int datasync, const seda_file_sink_t *sink, void *user);

/*
 * Closes a file: from the call on, requests on it are refused with -EBADF;
 * those accepted before and not yet in the kernel complete with -ECANCELED;
 * those in the kernel complete (io_uring is asked to cancel them). Then the
 * descriptor is closed and the CLOSE completion (result 0 or close(2)'s
 * error) delivered, after every other completion of the file (on io_uring
 * the kernel may still hold the open file for a moment after a request's
 * completion: an unlinked file's space may come back just after the CLOSE).
 * The handle
 * stays valid (calls on it return -EBADF) until that CLOSE event is
 * released, or longer while retained (seda_file_retain). Returns 0, -EBADF (already closing), -EAGAIN (a queue is full:
 * the file stays open; retry), -EPIPE, -ENOMEM. A request made on another
 * thread at the same time as the close is either accepted (and completes or
 * is cancelled) or refused with -EBADF.
 */
int seda_file_close(seda_file_t *f, const seda_file_sink_t *sink, void *user);

/*
 * Keeps f's handle valid after its CLOSE event is released (or its stage
 * destroyed): until the matching seda_file_release, the calls below read it
 * safely and requests on it are refused (-EBADF once it is closing, -EPIPE
 * once its stage is destroyed). For bindings whose file objects outlive the
 * completions. Any thread; the caller must hold a valid handle to retain.
 */
void seda_file_retain(seda_file_t *f);
/* Drops a seda_file_retain. NULL is ignored. */
void seda_file_release(seda_file_t *f);

/* The alignment O_DIRECT requests on f need (offset, length, buffer address):
 * 1 for a buffered file. */
uint32_t seda_file_alignment(const seda_file_t *f);

/* The file stage f belongs to. */
seda_file_stage_t *seda_file_stage_of(const seda_file_t *f);

/* 1 if f is open with O_DIRECT, else 0. */
int seda_file_is_direct(const seda_file_t *f);

/* The engine serving f (differs from the stage's after a fallback). */
int seda_file_engine(const seda_file_t *f);

/* ---- the aligned buffer pool ------------------------------------------ */

/* Every pooled buffer's address is a multiple of this. */
#define SEDA_FILE_BUFFER_ALIGN 4096

/*
 * A buffer of at least len bytes (1..1 GiB) aligned to SEDA_FILE_BUFFER_ALIGN,
 * from the stage's arena when a buffer of that size class is free there,
 * else from the heap. Its contents are undefined. NULL on -ENOMEM or a bad
 * length. Free it with seda_file_buffer_free on the same stage, or give it to
 * a request (seda_file_read_pooled, seda_file_write_pooled). It keeps the
 * stage's memory: it may be freed after seda_file_stage_destroy.
 */
void *seda_file_buffer_alloc(seda_file_stage_t *fs, size_t len);

/* Returns a buffer to the pool. NULL is ignored. */
void seda_file_buffer_free(seda_file_stage_t *fs, void *buf);

/* ---- fault injection (tests) ------------------------------------------ */

/* Pseudo-operation for seda_file_stage_inject_fault: the file system refuses
 * O_DIRECT (the error is ignored; the open falls back as described above). */
#define SEDA_FILE_FAULT_NO_DIRECT 7

/*
 * Makes the stage fail the `nth` (1-based) request from now on whose op bit
 * is set in op_mask (bit 1u << SEDA_FILE_READ, ...) with -error, where the
 * engine would hand it to the kernel; it never reaches the kernel, and its
 * completion carries -error like a real one. With bit
 * 1u << SEDA_FILE_FAULT_NO_DIRECT, the nth O_DIRECT open finds O_DIRECT
 * refused. count: how many requests in a row fail from the nth on (0: 1).
 * One fault is armed at a time; a new call replaces it; op_mask 0 disarms.
 * Returns 0 or -EINVAL (error not in 1..4095, nth 0 with a mask).
 */
int seda_file_stage_inject_fault(seda_file_stage_t *fs, uint32_t op_mask, uint64_t nth,
                                 uint32_t count, int error);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_FILE_H */
