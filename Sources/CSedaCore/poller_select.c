/*
 * The select(2) backend: level-triggered, interest kept in two fd_sets that
 * every wait copies and hands to the kernel, which scans them up to the
 * highest registered descriptor. select can only name descriptors below
 * FD_SETSIZE: a higher one is refused at add with -EMFILE (for a select loop
 * the process is out of descriptors), before any FD_SET could write past the
 * sets. select cannot tell ERR or HUP from readiness: a closed peer is
 * reported as IN (the read returns 0), an error as IN and OUT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "poller.h"

struct select_impl {
    fd_set read_interest;
    fd_set write_interest;
    int maxfd;      /* highest registered descriptor, -1 when none */
    int next_start; /* where the next scan starts (rotation, see wait) */
};

static int select_init(struct seda_poller *p, const seda_poller_options_t *opts)
{
    (void)opts;
    struct select_impl *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    FD_ZERO(&s->read_interest);
    FD_ZERO(&s->write_interest);
    s->maxfd = -1;
    p->impl = s;
    snprintf(p->describe, sizeof p->describe, "select (level; descriptors below %d)", FD_SETSIZE);
    return 0;
}

static void select_fini(struct seda_poller *p)
{
    free(p->impl);
    p->impl = NULL;
}

static void set_interest(struct select_impl *s, int fd, uint32_t events)
{
    if (events & SEDA_POLLER_IN)
        FD_SET(fd, &s->read_interest);
    else
        FD_CLR(fd, &s->read_interest);
    if (events & SEDA_POLLER_OUT)
        FD_SET(fd, &s->write_interest);
    else
        FD_CLR(fd, &s->write_interest);
}

static int select_add(struct seda_poller *p, int fd)
{
    struct select_impl *s = p->impl;
    if (fd >= FD_SETSIZE)
        return -EMFILE;
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    set_interest(s, fd, p->fds[fd].events);
    if (fd > s->maxfd)
        s->maxfd = fd;
    return 0;
}

static int select_mod(struct seda_poller *p, int fd, uint32_t old_events)
{
    (void)old_events;
    set_interest(p->impl, fd, p->fds[fd].events);
    return 0;
}

static int select_del(struct seda_poller *p, int fd)
{
    struct select_impl *s = p->impl;
    set_interest(s, fd, 0);
    if (fd == s->maxfd) {
        int m = fd - 1;
        /* p->fds[fd] is still registered here; every lower slot exists. */
        while (m >= 0 && !p->fds[m].registered)
            m--;
        s->maxfd = m;
    }
    return 0;
}

static int select_wait(struct seda_poller *p, seda_poller_event_t *out, int max, int64_t timeout_ns)
{
    struct select_impl *s = p->impl;
    int nfds = s->maxfd + 1;
    fd_set r, w;
    /* Copy only the words that hold descriptors below nfds; select(2) reads
     * no further. */
    size_t bytes = ((size_t)nfds + 8 * sizeof(long) - 1) / (8 * sizeof(long)) * sizeof(long);
    FD_ZERO(&r);
    FD_ZERO(&w);
    memcpy(&r, &s->read_interest, bytes);
    memcpy(&w, &s->write_interest, bytes);
    struct timespec ts = seda__poller_timespec(timeout_ns > 0 ? timeout_ns : 0);
    int ready = pselect(nfds, &r, &w, NULL, timeout_ns < 0 ? NULL : &ts, NULL);
    if (ready < 0)
        return -errno;
    if (ready == 0)
        return 0;
    /* Level-triggered: whatever does not fit in out is still ready next
     * time. Start each scan where the last one stopped so that a small `max`
     * cannot starve the higher descriptors. */
    int n = 0;
    int start = s->next_start < nfds ? s->next_start : 0;
    for (int i = 0; i < nfds && n < max; i++) {
        int fd = start + i;
        if (fd >= nfds)
            fd -= nfds;
        uint32_t ev = 0;
        if (FD_ISSET(fd, &r))
            ev |= SEDA_POLLER_IN;
        if (FD_ISSET(fd, &w))
            ev |= SEDA_POLLER_OUT;
        if (ev == 0)
            continue;
        out[n].udata = p->fds[fd].udata;
        out[n].fd = fd;
        out[n].events = ev;
        n++;
        s->next_start = fd + 1;
    }
    return n;
}

const struct seda__poller_ops seda__poller_select_ops = {
    .backend = SEDA_POLLER_SELECT,
    .trigger = SEDA_POLLER_LEVEL,
    .init = select_init,
    .fini = select_fini,
    .enter = NULL,
    .add = select_add,
    .mod = select_mod,
    .del = select_del,
    .wait = select_wait,
    .completion = NULL,
};
