/*
 * Small socket and process helpers shared by the load generators and the
 * baseline servers. Everything binds or connects to 127.0.0.1 only.
 * Errors are negative errno values.
 */
#ifndef SLOAD_NET_H
#define SLOAD_NET_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t sload_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit. Returns the new soft
 * limit (>= 0) or a negative errno.
 */
long sload_raise_nofile(void);

/*
 * A TCP listener on 127.0.0.1:port (port 0 picks one), with SO_REUSEADDR,
 * and SO_REUSEPORT when `reuseport` is non-zero (so several threads may each
 * bind the same port). Non-blocking when `nonblocking` is non-zero.
 * Stores the bound port in *bound (may be NULL). Returns the descriptor or
 * a negative errno.
 */
int sload_listen(uint16_t port, int backlog, int reuseport, int nonblocking, uint16_t *bound);

/*
 * Starts a non-blocking connect to 127.0.0.1:port with TCP_NODELAY set.
 * Returns the descriptor (the connection may still be in progress: wait for
 * writability and check sload_connect_result) or a negative errno.
 */
int sload_connect_start(uint16_t port);

/* 0 when a started connect succeeded, else the negative errno it failed with. */
int sload_connect_result(int fd);

/* Sets TCP_NODELAY (Nagle off): request/response traffic must not wait for ACKs. */
void sload_set_nodelay(int fd);

/*
 * Blocks SIGINT, SIGTERM and SIGPIPE in the calling thread (call it before
 * creating threads, so they inherit the mask), and stores SIGINT|SIGTERM in
 * *stop_set for sigwait/signalfd.
 */
void sload_block_stop_signals(sigset_t *stop_set);

/*
 * Writes all `len` bytes to a blocking descriptor, retrying short writes and
 * EINTR, with MSG_NOSIGNAL. Returns 0 or a negative errno.
 */
int sload_write_all(int fd, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
