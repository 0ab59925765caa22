/*
 * Blocking-I/O servers written for the comparison, as in the seed: a
 * thread per connection, or a fixed pool of threads that each accept and
 * serve one connection at a time. Both listen on 127.0.0.1, print the port,
 * and stop on SIGINT/SIGTERM: the listener and every open connection are shut
 * down, the threads end, the totals go to stderr.
 */
#ifndef TSERVER_H
#define TSERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct tserver;

/* Serves one connection on a blocking descriptor until it ends; the caller closes fd. */
typedef void (*tserver_serve_fn)(struct tserver *s, int fd);

struct tserver {
    const char *name;        /* for messages */
    uint16_t port;           /* 0: pick one */
    int backlog;
    uint32_t pool_threads;   /* 0: a thread per connection; else a pool of this many */
    size_t stack_size;       /* per serving thread */
    tserver_serve_fn serve;
    void *ctx;               /* the serve function's own state */
    /* Totals, added to by serving threads (relaxed: read once after they end). */
    _Atomic uint64_t connections;
    _Atomic uint64_t units;        /* packets or requests served */
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t thread_failures; /* connections refused because no thread could be made */
    /* Set once a stop signal arrived; the shutdown(2) calls are what wake the
     * threads, the flag tells them not to retry (see own() in tserver.c). */
    _Atomic int stopping;
    /* Private. */
    int lfd;
    _Atomic uint8_t *open; /* open[fd] = 1 while a serving thread owns fd */
    long open_cap;
};

/* Runs the server until a stop signal; returns the process exit code. */
int tserver_run(struct tserver *s);

/* Pretty units name for the totals line ("packets", "requests"). */
extern const char *tserver_units_name;

#endif
