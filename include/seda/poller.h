/*
 * seda_poller: readiness of file descriptors, behind one interface with four
 * backends chosen at run time: select(2), poll(2), epoll(7) and io_uring
 * (multishot IORING_OP_POLL_ADD).
 *
 * This is the standalone poller that C programs and `seda-bench poll` use
 * directly; the runtime's worker loops are built on the same backends.
 *
 *     seda_poller_t *p;
 *     seda_poller_create(&p, SEDA_POLLER_DEFAULT, NULL);
 *     seda_poller_add(p, fd, SEDA_POLLER_IN | SEDA_POLLER_RDHUP, conn);
 *     seda_poller_event_t ev[64];
 *     int n = seda_poller_wait(p, ev, 64, -1);   // ev[i].udata == conn
 *
 * Trigger mode is a property of the backend (seda_poller_trigger):
 *  - select and poll are LEVEL-triggered: every wait reports every registered
 *    descriptor that is ready now. Their interest lists live in user space and
 *    each wait hands the whole list to the kernel: O(registered) per wait.
 *  - epoll and io_uring are EDGE-triggered: a descriptor is reported when it
 *    becomes ready (new bytes arrived, buffer space freed, the peer closed),
 *    not again while it stays ready, so the caller reads (or writes) until
 *    EAGAIN before waiting again. Registration is done once, typically with
 *    IN | OUT | RDHUP, and costs nothing per wait: O(ready) per wait.
 *    Edge mode was chosen because it is what the socket layer wants (one
 *    registration per connection for its whole life, no epoll_ctl per write
 *    to toggle OUT interest) and because it is io_uring's multishot poll's
 *    native mode. add and mod re-arm: the readiness a descriptor has at that
 *    moment is reported by the next wait.
 *
 * Events reported: those registered, plus ERR and HUP always (as poll(2) and
 * epoll do), except that select(2) cannot tell ERR, HUP or RDHUP apart from
 * readiness: on the select backend a closed or failed peer shows as IN (and
 * OUT), and the read or write that follows tells which; a registration
 * without IN or OUT is never reported there.
 *
 * Threads: a poller has one owner thread, the first thread that calls add,
 * mod, del or wait on it; only that thread may call those four afterwards.
 * The io_uring backend enforces it (its ring is SINGLE_ISSUER: another thread
 * gets -EBUSY); the others do not check, and calls on them must never
 * overlap. create and destroy may run on another thread (see destroy). There
 * is no wake-up call from other threads: register an eventfd (for instance a
 * SEDA_NOTIFIER_EVENTFD notifier's) and write to it.
 *
 * Errors are negative errno values; success is 0 or a count.
 */
#ifndef SEDA_POLLER_H
#define SEDA_POLLER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct seda_poller seda_poller_t;

/* The backends. DEFAULT resolves as seda_poller_backend_resolve says. */
enum seda_poller_backend {
    SEDA_POLLER_DEFAULT = 0,
    SEDA_POLLER_SELECT = 1,
    SEDA_POLLER_POLL = 2,
    SEDA_POLLER_EPOLL = 3,
    SEDA_POLLER_IO_URING = 4,
};

/* One past the highest backend value (for loops over every backend). */
#define SEDA_POLLER_BACKEND_END 5

/* Readiness bits, in registrations and in reported events. */
enum seda_poller_events {
    SEDA_POLLER_IN = 1u << 0,    /* readable, or a listener has a connection, or end of stream */
    SEDA_POLLER_OUT = 1u << 1,   /* writable */
    SEDA_POLLER_ERR = 1u << 2,   /* an error is pending (SO_ERROR); always reported */
    SEDA_POLLER_HUP = 1u << 3,   /* hung up: both directions closed; always reported */
    SEDA_POLLER_RDHUP = 1u << 4, /* the peer closed its writing side (half-close) */
};

/* How a backend reports readiness (see the top of this file). */
enum seda_poller_trigger {
    SEDA_POLLER_LEVEL = 0,
    SEDA_POLLER_EDGE = 1,
};

/* One reported descriptor. */
typedef struct seda_poller_event {
    void *udata; /* as given to add or the last mod */
    int fd;
    uint32_t events; /* enum seda_poller_events */
} seda_poller_event_t;

/* A sink for the poller's warnings (one line, no newline). */
typedef void (*seda_poller_log_fn)(void *ctx, const char *message);

enum seda_poller_flags {
    /* io_uring only: when the kernel refuses a ring, fail with its error
     * instead of falling back to epoll. */
    SEDA_POLLER_NO_FALLBACK = 1u << 0,
};

typedef struct seda_poller_options {
    uint32_t flags;         /* enum seda_poller_flags */
    uint32_t uring_entries; /* io_uring submission queue size (power of two,
                             * <= 32768); 0: 256. The completion queue is 16
                             * times larger. Ignored by the other backends. */
    /* Receives the warning when io_uring falls back to epoll. NULL: the
     * warning goes to stderr. Called on the creating thread, during create. */
    seda_poller_log_fn log;
    void *log_ctx;
} seda_poller_options_t;

/*
 * The backend's name: "default", "select", "poll", "epoll", "io_uring".
 * NULL for a value that names no backend. Static storage.
 */
const char *seda_poller_backend_name(int backend);

/*
 * The backend a name designates: the names above, case-insensitive, and
 * "uring" or "iouring" for io_uring. Returns the enum seda_poller_backend
 * value (>= 0; "default" is SEDA_POLLER_DEFAULT), or -EINVAL for NULL or an
 * unknown name.
 */
int seda_poller_backend_parse(const char *name);

/*
 * The built-in default backend, used when neither the caller nor the
 * SEDA_POLLER environment variable chooses: epoll. The design keeps whichever
 * of epoll and io_uring measures faster on the server benchmarks; until the
 * socket layer exists to measure with, epoll (the simpler path).
 */
int seda_poller_backend_default(void);

/*
 * Resolves a requested backend: an explicit backend is returned as is;
 * SEDA_POLLER_DEFAULT becomes the SEDA_POLLER environment variable's backend
 * if it is set and not empty (its value parsed by seda_poller_backend_parse;
 * "default" means the built-in default), else seda_poller_backend_default().
 * Returns a backend in SELECT..IO_URING, or -EINVAL for an unknown requested
 * value or an environment value that names no backend (a typo is an error,
 * not a silent default). Availability is not checked here: io_uring's
 * fallback happens at create. Reads the environment: not safe against a
 * concurrent setenv.
 */
int seda_poller_backend_resolve(int requested);

/*
 * The trigger mode of a backend (SEDA_POLLER_LEVEL or SEDA_POLLER_EDGE), after
 * resolving DEFAULT; -EINVAL for an unknown backend or a bad SEDA_POLLER.
 */
int seda_poller_backend_trigger(int backend);

/*
 * Creates a poller. backend: a value of enum seda_poller_backend, DEFAULT
 * resolved by seda_poller_backend_resolve. opts may be NULL for defaults.
 * io_uring: if the kernel refuses a ring (no io_uring, forbidden by seccomp
 * or sysctl, out of memory) the poller is an epoll one instead, the warning
 * goes to opts->log (or stderr), and seda_poller_fallback_error tells why;
 * with SEDA_POLLER_NO_FALLBACK the kernel's error is returned instead.
 * Returns 0 and stores the poller in *out; -EINVAL (NULL out, unknown
 * backend or flags, bad uring_entries, bad SEDA_POLLER); -ENOMEM; -EMFILE or
 * -ENFILE; or the backend's error. Any thread; free with seda_poller_destroy.
 */
int seda_poller_create(seda_poller_t **out, int backend, const seda_poller_options_t *opts);

/*
 * Destroys a poller: closes its kernel objects and forgets every
 * registration (the registered descriptors stay open: they are the caller's).
 * Call it on the owner thread, or on any thread once the owner thread has
 * exited or if no thread ever used the poller. NULL is ignored.
 */
void seda_poller_destroy(seda_poller_t *p);

/*
 * Watches fd for `events` (IN, OUT, RDHUP; ERR and HUP are always watched;
 * 0 watches only those two) and reports it with udata. Owner thread only.
 * Returns 0; -EBADF (fd < 0, or no open descriptor: select, poll and epoll
 * check at once, while io_uring's kernel finds out later and the next wait
 * reports fd with ERR, once); -EINVAL (unknown bits in events); -EEXIST (fd
 * is already registered: use mod); -EMFILE (select: fd >= FD_SETSIZE, which
 * select(2) cannot watch; nothing is written past its sets); -EPERM (epoll:
 * a regular file or directory, which epoll refuses); -ENOMEM; -EAGAIN
 * (io_uring: its submission queue stayed full; wait, then try again);
 * -EBUSY from a thread that is not the owner (io_uring). Call del before
 * closing fd (otherwise select fails the next wait with -EBADF, poll reports
 * ERR, epoll forgets fd, and io_uring keeps watching the file).
 */
int seda_poller_add(seda_poller_t *p, int fd, uint32_t events, void *udata);

/*
 * Changes what fd is watched for and its udata, and re-arms it (an edge
 * backend reports the readiness fd has now). Owner thread only. Returns 0;
 * -ENOENT (fd is not registered); -EBADF; -EINVAL; -ENOMEM; -EAGAIN and
 * -EBUSY as add. On failure the old registration stays as it was.
 */
int seda_poller_mod(seda_poller_t *p, int fd, uint32_t events, void *udata);

/*
 * Stops watching fd. Events of fd that a wait has already returned stay in
 * the caller's array; no later wait reports fd until it is added again (a
 * stale io_uring completion is recognised and dropped). After del the
 * poller holds no reference to the file: a close(fd) that follows really
 * closes it (io_uring ends its poll request here, one system call). Owner
 * thread only. Returns 0; -ENOENT (not registered); -EBADF (fd < 0);
 * -EAGAIN and -EBUSY as add.
 */
int seda_poller_del(seda_poller_t *p, int fd);

/*
 * Waits until at least one registered descriptor is ready, or timeout_ns
 * passes (< 0: no limit; 0: do not block, just collect what is ready), and
 * stores up to `max` events in out, at most one per descriptor. Returns the
 * number stored (>= 1), or 0 when the timeout expired with nothing to report
 * (never earlier, never for timeout_ns < 0); -EINVAL (NULL out, max < 1);
 * -EINTR when a signal handler ran during the wait and nothing was collected
 * (no backend restarts the wait: the caller decides, usually by calling
 * again); -EBUSY from a thread that is not the owner (io_uring); or the
 * kernel's error. Readiness left over when more than `max` descriptors are
 * ready is reported by the next wait (level backends rotate where they start,
 * so every ready descriptor gets its turn). Owner thread only.
 */
int seda_poller_wait(seda_poller_t *p, seda_poller_event_t *out, int max, int64_t timeout_ns);

/* The backend the poller runs (EPOLL after an io_uring fallback). Any thread. */
int seda_poller_backend_of(const seda_poller_t *p);

/* The poller's trigger mode, SEDA_POLLER_LEVEL or SEDA_POLLER_EDGE. Any thread. */
int seda_poller_trigger(const seda_poller_t *p);

/*
 * 0, or the negative errno with which the kernel refused an io_uring ring
 * when this poller fell back to epoll. Any thread.
 */
int seda_poller_fallback_error(const seda_poller_t *p);

/*
 * A one-line description of how the poller works, e.g. "epoll (edge)" or
 * "io_uring (multishot poll, edge; SINGLE_ISSUER|DEFER_TASKRUN)". Lives as
 * long as the poller. Any thread.
 */
const char *seda_poller_describe(const seda_poller_t *p);

/* Descriptors registered now. Owner thread (or once it is quiet). */
int seda_poller_count(const seda_poller_t *p);

#ifdef __cplusplus
}
#endif

#endif /* SEDA_POLLER_H */
