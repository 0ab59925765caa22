/*
 * Seda: the Staged Event-Driven Architecture, C core.
 *
 * Umbrella header: version, error conventions, feature probe. Include this, or
 * the individual headers it pulls in.
 *
 * Error convention (every seda_* call): success returns 0 or a non-negative
 * count; failure returns a negative errno value (-EAGAIN, -EPIPE, ...). The
 * global errno is never the carrier of a Seda error. If a call that takes a
 * callback fails, the callback is never called.
 */
#ifndef SEDA_SEDA_H
#define SEDA_SEDA_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define SEDA_VERSION_MAJOR 0
#define SEDA_VERSION_MINOR 1
#define SEDA_VERSION_PATCH 0
#define SEDA_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version as "MAJOR.MINOR.PATCH". Static storage; never free it. */
const char *seda_version(void);

/*
 * The error table: every code a Seda call returns (negated), with its
 * message, written to fit every call that returns it. X(NAME, "message") per
 * code, in the manner of libuv's UV_ERRNO_MAP: seda_strerror and
 * seda_err_name are generated from it, bindings map from it, and a test
 * checks that every code the core's sources return is in it. The codes after
 * the core's own are the ones the I/O layer (sockets, disk) returns.
 */
#define SEDA_ERRNO_MAP(X)                                                               \
    X(EAGAIN, "would block: the queue is full (enqueue) or empty (dequeue); try again") \
    X(EPIPE, "closed: the queue, stage or runtime no longer accepts events")            \
    X(EINVAL, "invalid argument")                                                       \
    X(ETIMEDOUT, "timed out")                                                           \
    X(ENOMEM, "out of memory, or no thread could be started")                           \
    X(EEXIST, "already exists (a stage of that name)")                                  \
    X(ENOTSUP, "not supported by this kind of object")                                  \
    X(EDEADLK, "would deadlock: the call would wait for the calling thread itself, or " \
               "for a handler waiting for it (a shutdown from a handler, a stage "      \
               "destroyed from its own handler, a shared-thread handler waiting for "   \
               "room in a queue)")                                                      \
    X(ENOSPC, "no room left (the run queue's stage budget, or the device)")             \
    X(EBUSY, "busy: taken already, or in use at this instant; try again")               \
    X(ENOENT, "not found (no such pending timer, stage or file)")                       \
    X(EALREADY, "already done (started before)")                                        \
    X(EINTR, "interrupted by a signal")                                                 \
    X(EBADF, "bad file descriptor")                                                     \
    X(EPERM, "operation not permitted")                                                 \
    X(EMFILE, "too many open files in this process")                                    \
    X(ENFILE, "too many open files in the system")                                      \
    X(ENOSYS, "not implemented by this kernel")                                         \
    X(ECONNREFUSED, "connection refused")                                               \
    X(ECONNRESET, "connection reset by peer")                                           \
    X(ECONNABORTED, "connection aborted")                                               \
    X(ENOTCONN, "not connected")                                                        \
    X(EADDRINUSE, "address already in use")                                             \
    X(EADDRNOTAVAIL, "address not available")                                           \
    X(ENETUNREACH, "network unreachable")                                               \
    X(EHOSTUNREACH, "host unreachable")                                                 \
    X(ENOBUFS, "no buffer space available")                                             \
    X(ECANCELED, "cancelled")                                                           \
    X(EIO, "input/output error")                                                        \
    X(EACCES, "permission denied")                                                      \
    X(EISDIR, "is a directory")                                                         \
    X(ENOTDIR, "not a directory")

/*
 * A description of a Seda return code: a negative errno from the table above
 * ("closed: ..." for -EPIPE), "success" for 0. Accepts positive errno values
 * too. A code outside the table gets the C library's description, or
 * "unknown error". Static storage; thread-safe; any int (INT_MIN too).
 */
const char *seda_strerror(int code);

/*
 * The name of a Seda return code: "EPIPE" for -EPIPE (or EPIPE), "OK" for 0,
 * "UNKNOWN" for a code outside the table. Static storage; thread-safe.
 */
const char *seda_err_name(int code);

/*
 * The index-th code of SEDA_ERRNO_MAP, in table order, as a positive errno
 * value; 0 past the end. For bindings that cannot expand the macro (Swift
 * checks its error cases against the whole table with it). Any thread.
 */
int seda_err_code_at(size_t index);

/* Kernel facilities the core can use, probed at run time (see seda_features). */
enum seda_feature {
    SEDA_FEATURE_EPOLL = 1u << 0,    /* epoll_create1 works */
    SEDA_FEATURE_IO_URING = 1u << 1, /* an io_uring instance can be set up */
    SEDA_FEATURE_LIBAIO = 1u << 2,   /* io_setup (kernel AIO) works */
    SEDA_FEATURE_EVENTFD = 1u << 3,  /* eventfd works */
};

/*
 * Probes the running kernel once and returns a mask of enum seda_feature.
 * Thread-safe; the first call costs a few syscalls, later calls are a load.
 */
uint32_t seda_features(void);

#ifdef __cplusplus
}
#endif

#include "clock.h"
#include "file.h"
#include "notifier.h"
#include "poller.h"
#include "queue.h"
#include "runtime.h"
#include "stats.h"
#include "timer.h"

#endif /* SEDA_SEDA_H */
