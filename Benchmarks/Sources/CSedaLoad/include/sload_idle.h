/*
 * Idle keep-alive connections, for measuring what a server keeps per open
 * connection: opens `count` connections to 127.0.0.1:port, sends one
 * keep-alive GET of `path` on each, reads its whole response (the head's
 * Content-Length), and then leaves the connection open and silent.
 * Bounded: at most `window` connects in flight at a time, and the whole
 * open takes at most `timeout_s`. Errors are negative errno values.
 */
#ifndef SLOAD_IDLE_H
#define SLOAD_IDLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sload_idle {
    uint32_t count;  /* connections asked for */
    uint32_t idle;   /* answered with a 2xx and now idle (their descriptors are open) */
    uint32_t failed; /* connect failed, reset, closed, non-2xx, or unfinished at the timeout */
    double open_s;   /* wall time the open took */
    int *fds;        /* [count]: descriptor of each idle connection, -1 for a failed one */
} sload_idle_t;

/*
 * Opens the connections (see above) into *out. Returns 0 when it ran (check
 * out->idle and out->failed), or a negative errno when it could not start
 * (no memory, no epoll). The caller owns out->fds: release with
 * sload_idle_close. Any thread; blocks up to timeout_s.
 */
int sload_idle_open(uint16_t port, const char *path, uint32_t count, uint32_t window,
                    double timeout_s, sload_idle_t *out);

/*
 * How many of the idle connections are still open: neither closed by the
 * server (EOF, reset) nor holding unexpected bytes. Does not block.
 */
uint32_t sload_idle_still_open(const sload_idle_t *idle);

/* Closes every connection and frees out->fds. Safe on a zeroed struct. */
void sload_idle_close(sload_idle_t *idle);

#ifdef __cplusplus
}
#endif

#endif
