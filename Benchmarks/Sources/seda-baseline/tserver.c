/* Thread-per-connection and thread-pool servers over blocking sockets (see tserver.h). */
#define _GNU_SOURCE
#include "tserver.h"
#include "sload_net.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char *tserver_units_name = "units";

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static long live; /* serving threads alive (under live_lock) */

static void live_add(long d)
{
    pthread_mutex_lock(&live_lock);
    live += d;
    if (live == 0)
        pthread_cond_broadcast(&live_cond);
    pthread_mutex_unlock(&live_lock);
}

/* Marks fd as owned by a serving thread, so a stop can shut it down. */
static void own(struct tserver *s, int fd, uint8_t on)
{
    /* seq_cst, with the `stopping` store and load and the stop scan: of an
     * accept racing a stop, either the acceptor sees `stopping` or the scan
     * sees the descriptor (Dekker: store then load on both sides). */
    if (fd < s->open_cap)
        atomic_store_explicit(&s->open[fd], on, memory_order_seq_cst);
}

static void serve_and_close(struct tserver *s, int fd)
{
    sload_set_nodelay(fd);
    atomic_fetch_add_explicit(&s->connections, 1, memory_order_relaxed);
    s->serve(s, fd);
    own(s, fd, 0);
    close(fd);
}

/* accept(2), backing off on EMFILE/ENFILE instead of spinning; -1 when stopping. */
static int accept_one(struct tserver *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            own(s, fd, 1);
            /* A stop that scanned the table before own() would miss fd. */
            if (atomic_load_explicit(&s->stopping, memory_order_seq_cst)) {
                own(s, fd, 0);
                close(fd);
                return -1;
            }
            return fd;
        }
        if (atomic_load_explicit(&s->stopping, memory_order_relaxed))
            return -1;
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        } else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) {
            /* shutdown(2) of the listener ends up here (EINVAL) */
            return -1;
        }
    }
}

struct conn_arg {
    struct tserver *s;
    int fd;
};

static void *conn_thread(void *p)
{
    struct conn_arg a = *(struct conn_arg *)p;
    free(p);
    serve_and_close(a.s, a.fd);
    live_add(-1);
    return NULL;
}

static void *acceptor_thread(void *p)
{
    struct tserver *s = p;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, s->stack_size);
    for (;;) {
        int fd = accept_one(s);
        if (fd < 0)
            break;
        struct conn_arg *a = malloc(sizeof *a);
        pthread_t t;
        int e = ENOMEM;
        if (a) {
            a->s = s;
            a->fd = fd;
            live_add(1);
            e = pthread_create(&t, &attr, conn_thread, a);
            if (e != 0) {
                live_add(-1);
                free(a);
            }
        }
        if (e != 0) {
            /* The seed's threaded server hit the per-user thread limit here. */
            if (atomic_fetch_add_explicit(&s->thread_failures, 1, memory_order_relaxed) == 0)
                fprintf(stderr, "%s: cannot create a thread per connection: %s (refusing)\n", s->name,
                        strerror(e));
            own(s, fd, 0);
            close(fd);
        }
    }
    pthread_attr_destroy(&attr);
    live_add(-1);
    return NULL;
}

static void *pool_thread(void *p)
{
    struct tserver *s = p;
    for (;;) {
        int fd = accept_one(s);
        if (fd < 0)
            break;
        serve_and_close(s, fd);
    }
    live_add(-1);
    return NULL;
}

int tserver_run(struct tserver *s)
{
    long cap = sload_raise_nofile();
    if (cap < 0)
        cap = 1024;
    s->open_cap = cap;
    s->open = calloc((size_t)cap, 1);
    if (!s->open)
        return 1;
    if (s->stack_size < (size_t)PTHREAD_STACK_MIN)
        s->stack_size = PTHREAD_STACK_MIN;
    sigset_t stop;
    sload_block_stop_signals(&stop);
    uint16_t port = 0;
    s->lfd = sload_listen(s->port, s->backlog, 0, 0, &port);
    if (s->lfd < 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%u: %s\n", s->name, s->port, strerror(-s->lfd));
        return 1;
    }
    printf("%s: listening on 127.0.0.1:%u\n", s->name, port);
    fflush(stdout);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, s->stack_size);
    uint32_t n = s->pool_threads ? s->pool_threads : 1;
    for (uint32_t i = 0; i < n; i++) {
        pthread_t t;
        live_add(1);
        int e = pthread_create(&t, &attr, s->pool_threads ? pool_thread : acceptor_thread, s);
        if (e != 0) {
            live_add(-1);
            fprintf(stderr, "%s: cannot start thread %u: %s\n", s->name, i, strerror(e));
            if (i == 0)
                return 1;
            break;
        }
    }
    pthread_attr_destroy(&attr);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    atomic_store_explicit(&s->stopping, 1, memory_order_seq_cst); /* pairs with accept_one */
    /* Wakes every thread blocked in accept(2) (Linux: EINVAL). */
    shutdown(s->lfd, SHUT_RDWR);
    /* Wakes every thread blocked in read(2)/write(2) on a connection. A
     * descriptor seen here may be closed and reused meanwhile: only by this
     * server's own accept, which also stops. */
    for (long fd = 0; fd < s->open_cap; fd++)
        if (atomic_load_explicit(&s->open[fd], memory_order_seq_cst))
            shutdown((int)fd, SHUT_RDWR);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&live_lock);
    while (live > 0)
        if (pthread_cond_timedwait(&live_cond, &live_lock, &until) == ETIMEDOUT)
            break;
    long left = live;
    pthread_mutex_unlock(&live_lock);
    close(s->lfd);
    fprintf(stderr, "%s: stopped (%s): %llu connections, %llu %s, %llu bytes in, %llu thread failures%s\n",
            s->name, strsignal(sig), (unsigned long long)atomic_load(&s->connections),
            (unsigned long long)atomic_load(&s->units), tserver_units_name,
            (unsigned long long)atomic_load(&s->bytes_in), (unsigned long long)atomic_load(&s->thread_failures),
            left ? " (some threads did not end in 5 s)" : "");
    return left ? 1 : 0;
}
