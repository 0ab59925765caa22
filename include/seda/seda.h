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
 * A human-readable description of a negative Seda return code (-EAGAIN ->
 * "queue full or empty (try again)"). Accepts positive errno values too.
 * Static storage; thread-safe.
 */
const char *seda_strerror(int code);

/* Kernel facilities the core can use, probed at run time (see seda_features). */
enum seda_feature {
    SEDA_FEATURE_EPOLL    = 1u << 0, /* epoll_create1 works */
    SEDA_FEATURE_IO_URING = 1u << 1, /* an io_uring instance can be set up */
    SEDA_FEATURE_LIBAIO   = 1u << 2, /* io_setup (kernel AIO) works */
    SEDA_FEATURE_EVENTFD  = 1u << 3, /* eventfd works */
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
