/*
 * The epoll(7) backend: edge-triggered (EPOLLET). A descriptor is registered
 * once (the socket layer: IN | OUT | RDHUP for a connection's whole life) and
 * reported when it becomes ready, so the caller reads or writes until EAGAIN;
 * no epoll_ctl is needed to toggle OUT interest around a blocked write, and a
 * wait costs O(ready), not O(registered). epoll_pwait2 gives the nanosecond
 * timeout (epoll_wait in milliseconds, rounded up, where the kernel lacks it).
 * The kernel's event carries the descriptor number; the udata is read from
 * the descriptor table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "poller.h"

struct epoll_impl {
    int epfd;
    int have_pwait2; /* epoll_pwait2 exists (Linux 5.11) until it says ENOSYS */
    int cap;
    struct epoll_event *events;
};

static int epoll_init(struct seda_poller *p, const seda_poller_options_t *opts)
{
    (void)opts;
    struct epoll_impl *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int rc = -errno;
        free(s);
        return rc;
    }
    s->have_pwait2 = 1;
    p->impl = s;
    snprintf(p->describe, sizeof p->describe, "epoll (edge)");
    return 0;
}

static void epoll_fini(struct seda_poller *p)
{
    struct epoll_impl *s = p->impl;
    close(s->epfd);
    free(s->events);
    free(s);
    p->impl = NULL;
}

static uint32_t to_epoll(uint32_t events)
{
    uint32_t m = EPOLLET;
    if (events & SEDA_POLLER_IN)
        m |= EPOLLIN;
    if (events & SEDA_POLLER_OUT)
        m |= EPOLLOUT;
    if (events & SEDA_POLLER_RDHUP)
        m |= EPOLLRDHUP;
    return m;
}

static int ctl(struct seda_poller *p, int op, int fd)
{
    struct epoll_impl *s = p->impl;
    struct epoll_event ev = { .events = to_epoll(p->fds[fd].events), .data.fd = fd };
    return epoll_ctl(s->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int epoll_add(struct seda_poller *p, int fd)
{
    return ctl(p, EPOLL_CTL_ADD, fd);
}

static int epoll_mod(struct seda_poller *p, int fd, uint32_t old_events)
{
    (void)old_events;
    /* EPOLL_CTL_MOD re-arms: the current readiness is reported again. */
    return ctl(p, EPOLL_CTL_MOD, fd);
}

static int epoll_del(struct seda_poller *p, int fd)
{
    int rc = ctl(p, EPOLL_CTL_DEL, fd);
    /* Closed before del (EBADF), or the kernel already dropped it with the
     * file (ENOENT): either way it is gone, and wait ignores descriptors the
     * table does not hold. */
    if (rc == -EBADF || rc == -ENOENT)
        rc = 0;
    return rc;
}

static int epoll_wait_(struct seda_poller *p, seda_poller_event_t *out, int max, int64_t timeout_ns)
{
    struct epoll_impl *s = p->impl;
    if (max > s->cap) {
        struct epoll_event *ev = realloc(s->events, (size_t)max * sizeof *ev);
        if (ev == NULL)
            return -ENOMEM;
        s->events = ev;
        s->cap = max;
    }
    int ready;
    if (s->have_pwait2) {
        struct timespec ts = seda__poller_timespec(timeout_ns > 0 ? timeout_ns : 0);
        ready = epoll_pwait2(s->epfd, s->events, max, timeout_ns < 0 ? NULL : &ts, NULL);
        if (ready < 0 && errno == ENOSYS)
            s->have_pwait2 = 0;
    }
    if (!s->have_pwait2) {
        int ms = -1;
        if (timeout_ns >= 0) {
            int64_t m = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
            ms = m > 0x7fffffff ? 0x7fffffff : (int)m;
        }
        ready = epoll_wait(s->epfd, s->events, max, ms);
    }
    if (ready < 0)
        return -errno;
    int n = 0;
    for (int i = 0; i < ready; i++) {
        int fd = s->events[i].data.fd;
        if ((uint32_t)fd >= p->fds_cap || !p->fds[fd].registered)
            continue; /* closed without del while another descriptor kept the file */
        uint32_t e = s->events[i].events, ev = 0;
        if (e & EPOLLIN)
            ev |= SEDA_POLLER_IN;
        if (e & EPOLLOUT)
            ev |= SEDA_POLLER_OUT;
        if (e & EPOLLERR)
            ev |= SEDA_POLLER_ERR;
        if (e & EPOLLHUP)
            ev |= SEDA_POLLER_HUP;
        if (e & EPOLLRDHUP)
            ev |= SEDA_POLLER_RDHUP;
        out[n].udata = p->fds[fd].udata;
        out[n].fd = fd;
        out[n].events = ev;
        n++;
    }
    return n;
}

const struct seda__poller_ops seda__poller_epoll_ops = {
    .backend = SEDA_POLLER_EPOLL,
    .trigger = SEDA_POLLER_EDGE,
    .init = epoll_init,
    .fini = epoll_fini,
    .enter = NULL,
    .add = epoll_add,
    .mod = epoll_mod,
    .del = epoll_del,
    .wait = epoll_wait_,
    .completion = NULL,
};
