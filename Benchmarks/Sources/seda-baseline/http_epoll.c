/*
 * The bare epoll responder: "the loop's physical limit" for the HTTP
 * comparison. One thread (or --threads N, each with its own SO_REUSEPORT
 * listener and epoll set), level-triggered epoll, and no HTTP beyond
 * counting CRLFCRLF: each request head found is answered with one prebuilt
 * response (the 8 KB page with its head), pipelined requests with one writev.
 * It never closes a connection itself (Connection: close is not looked at).
 */
#define _GNU_SOURCE
#include "baseline.h"
#include "sload_http.h"
#include "sload_net.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_BUF 65536
#define MAX_IOV 64

struct econn {
    int fd;
    uint8_t match;     /* bytes of CRLFCRLF matched at the end of the last read */
    uint8_t writing;   /* EPOLLOUT registered, reading paused */
    uint32_t owed;     /* responses not yet fully written */
    size_t off;        /* bytes of the first owed response already written */
};

struct loop {
    pthread_t tid;
    int ep, lfd, stopfd;
    struct econn **conns; /* by descriptor: this loop's connections */
    long cap;
    uint64_t requests, accepted;
    int64_t paused_until; /* accepting paused (out of descriptors) until then; 0: not paused */
    char *rbuf;
};

static char *response;
static size_t response_len;

static void conn_close(struct loop *l, struct econn *c)
{
    l->conns[c->fd] = NULL;
    close(c->fd); /* also leaves the epoll set */
    free(c);
}

static void want(struct loop *l, struct econn *c, int writing)
{
    if (c->writing == writing)
        return;
    struct epoll_event ev = {.events = writing ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->writing = (uint8_t)writing;
}

/* Writes what is owed; 0, or -1 when the connection died. */
static int drain(struct loop *l, struct econn *c)
{
    struct iovec iov[MAX_IOV];
    while (c->owed) {
        int n = c->owed < MAX_IOV ? (int)c->owed : MAX_IOV;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = response;
            iov[i].iov_len = response_len;
        }
        iov[0].iov_base = response + c->off;
        iov[0].iov_len = response_len - c->off;
        ssize_t k = n == 1 ? send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                           : writev(c->fd, iov, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                want(l, c, 1);
                return 0;
            }
            return -1;
        }
        size_t done = (size_t)k + c->off;
        c->owed -= (uint32_t)(done / response_len);
        c->off = done % response_len;
    }
    want(l, c, 0);
    return 0;
}

static void on_read(struct loop *l, struct econn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, l->rbuf, READ_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_close(l, c);
            return;
        }
        uint32_t m = c->match, found = 0;
        for (ssize_t i = 0; i < n; i++) {
            char ch = l->rbuf[i];
            if (ch == '\r')
                m = m == 2 ? 3 : 1;
            else if (ch == '\n' && (m == 1 || m == 3)) {
                if (++m == 4) {
                    found++;
                    m = 0;
                }
            } else
                m = 0;
        }
        c->match = (uint8_t)m;
        c->owed += found;
        l->requests += found;
        if (n < READ_BUF)
            break;
    }
    if (c->owed && drain(l, c) != 0)
        conn_close(l, c);
}

static void on_accept(struct loop *l)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: leave the listener out for 100 ms, no spin (as nginx). */
                epoll_ctl(l->ep, EPOLL_CTL_DEL, l->lfd, NULL);
                l->paused_until = sload_now_ns() + 100000000;
            }
            return;
        }
        struct econn *c = calloc(1, sizeof *c);
        if (!c || fd >= l->cap) {
            free(c);
            close(fd);
            continue;
        }
        sload_set_nodelay(fd);
        c->fd = fd;
        l->conns[fd] = c;
        l->accepted++;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void *loop_main(void *p)
{
    struct loop *l = p;
    struct epoll_event evs[256];
    for (;;) {
        int timeout = -1;
        if (l->paused_until) {
            int64_t left = l->paused_until - sload_now_ns();
            if (left <= 0) {
                struct epoll_event lev = {.events = EPOLLIN, .data.ptr = l};
                epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &lev);
                l->paused_until = 0;
            } else {
                timeout = (int)(left / 1000000) + 1;
            }
        }
        int n = epoll_wait(l->ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == l) {
                on_accept(l);
            } else if (tag == &l->stopfd) {
                goto stop;
            } else {
                struct econn *c = tag;
                if (c->writing) {
                    if (drain(l, c) != 0)
                        conn_close(l, c);
                } else {
                    on_read(l, c);
                }
            }
        }
    }
stop:
    for (long fd = 0; fd < l->cap; fd++)
        if (l->conns[fd])
            conn_close(l, l->conns[fd]);
    return NULL;
}

int baseline_http_epoll(int argc, char **argv)
{
    uint16_t port = 0;
    int threads = 1, backlog = 4096;
    static const struct option longs[] = {{"port", required_argument, 0, 'p'},
                                          {"threads", required_argument, 0, 't'},
                                          {"backlog", required_argument, 0, 'b'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:t:b:h", longs, NULL)) != -1) {
        switch (c) {
        case 'p': port = (uint16_t)atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'b': backlog = atoi(optarg); break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: seda-baseline http-epoll [--port N] [--threads N] [--backlog N]\n"
                    "  The bare epoll responder: answers every CRLFCRLF with the prebuilt 8 KB\n"
                    "  page response; one thread per --threads, SO_REUSEPORT. Port 0 picks one.\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (threads < 1) {
        fprintf(stderr, "http-epoll: --threads must be at least 1\n");
        return 2;
    }
    char head[256];
    size_t hl = sload_http_head(head, sizeof head, 200, "text/html", SLOAD_PAGE_SIZE, SLOAD_CONN_NONE);
    response_len = hl + SLOAD_PAGE_SIZE;
    response = malloc(response_len);
    memcpy(response, head, hl);
    memcpy(response + hl, sload_page(), SLOAD_PAGE_SIZE);

    long cap = sload_raise_nofile();
    sigset_t stop;
    sload_block_stop_signals(&stop);
    int stopfd = eventfd(0, EFD_CLOEXEC);
    struct loop *loops = calloc((size_t)threads, sizeof *loops);
    uint16_t bound = port;
    for (int i = 0; i < threads; i++) {
        struct loop *l = &loops[i];
        l->lfd = sload_listen(bound, backlog, threads > 1, 1, &bound);
        if (l->lfd < 0) {
            fprintf(stderr, "http-epoll: cannot listen on 127.0.0.1:%u: %s\n", bound, strerror(-l->lfd));
            return 1;
        }
        l->stopfd = stopfd;
        l->cap = cap;
        l->conns = calloc((size_t)cap, sizeof *l->conns);
        l->rbuf = malloc(READ_BUF);
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = l};
        struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &l->stopfd};
        epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &lev);
        epoll_ctl(l->ep, EPOLL_CTL_ADD, stopfd, &sev);
    }
    printf("http-epoll: listening on 127.0.0.1:%u\n", bound);
    fflush(stdout);
    for (int i = 0; i < threads; i++)
        pthread_create(&loops[i].tid, NULL, loop_main, &loops[i]);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    uint64_t one = 1;
    if (write(stopfd, &one, sizeof one) != sizeof one)
        perror("http-epoll: eventfd");
    uint64_t requests = 0, accepted = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(loops[i].tid, NULL);
        requests += loops[i].requests;
        accepted += loops[i].accepted;
        close(loops[i].lfd);
        close(loops[i].ep);
        free(loops[i].conns);
        free(loops[i].rbuf);
    }
    close(stopfd);
    free(loops);
    free(response);
    fprintf(stderr, "http-epoll: stopped (%s): %llu connections, %llu requests\n", strsignal(sig),
            (unsigned long long)accepted, (unsigned long long)requests);
    return 0;
}
