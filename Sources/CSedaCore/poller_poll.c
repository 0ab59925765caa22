/*
 * The poll(2) backend: level-triggered, interest kept in a dense pollfd array
 * (each descriptor's index in p->fds[fd].slot; del moves the last entry into
 * the hole) that every wait hands to the kernel whole. No descriptor limit
 * beyond the process's own. Waits with ppoll for a nanosecond timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poller.h"

struct poll_impl {
    struct pollfd *set;
    uint32_t n, cap;
    uint32_t next_start; /* where the next scan starts (rotation, see wait) */
};

static int poll_init(struct seda_poller *p, const seda_poller_options_t *opts)
{
    (void)opts;
    struct poll_impl *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    p->impl = s;
    snprintf(p->describe, sizeof p->describe, "poll (level)");
    return 0;
}

static void poll_fini(struct seda_poller *p)
{
    struct poll_impl *s = p->impl;
    free(s->set);
    free(s);
    p->impl = NULL;
}

static int poll_add(struct seda_poller *p, int fd)
{
    struct poll_impl *s = p->impl;
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 64;
        struct pollfd *set = realloc(s->set, (size_t)cap * sizeof *set);
        if (set == NULL)
            return -ENOMEM;
        s->set = set;
        s->cap = cap;
    }
    s->set[s->n] = (struct pollfd){ .fd = fd, .events = seda__poller_to_poll(p->fds[fd].events) };
    p->fds[fd].slot = s->n++;
    return 0;
}

static int poll_mod(struct seda_poller *p, int fd, uint32_t old_events)
{
    (void)old_events;
    struct poll_impl *s = p->impl;
    s->set[p->fds[fd].slot].events = seda__poller_to_poll(p->fds[fd].events);
    return 0;
}

static int poll_del(struct seda_poller *p, int fd)
{
    struct poll_impl *s = p->impl;
    uint32_t slot = p->fds[fd].slot;
    uint32_t last = --s->n;
    if (slot != last) {
        s->set[slot] = s->set[last];
        p->fds[s->set[slot].fd].slot = slot;
    }
    return 0;
}

static int poll_wait(struct seda_poller *p, seda_poller_event_t *out, int max, int64_t timeout_ns)
{
    struct poll_impl *s = p->impl;
    struct timespec ts = seda__poller_timespec(timeout_ns > 0 ? timeout_ns : 0);
    int ready = ppoll(s->set, s->n, timeout_ns < 0 ? NULL : &ts, NULL);
    if (ready < 0)
        return -errno;
    if (ready == 0)
        return 0;
    /* Level-triggered: what does not fit in out is reported next time; the
     * scan starts where the last one stopped so none is starved. */
    int n = 0;
    uint32_t start = s->next_start < s->n ? s->next_start : 0;
    for (uint32_t i = 0; i < s->n && n < max && ready > 0; i++) {
        uint32_t k = start + i;
        if (k >= s->n)
            k -= s->n;
        struct pollfd *pf = &s->set[k];
        if (pf->revents == 0)
            continue;
        ready--;
        uint32_t ev = seda__poller_from_poll((uint16_t)pf->revents, p->fds[pf->fd].events);
        if (ev == 0)
            continue;
        out[n].udata = p->fds[pf->fd].udata;
        out[n].fd = pf->fd;
        out[n].events = ev;
        n++;
        s->next_start = k + 1;
    }
    return n;
}

const struct seda__poller_ops seda__poller_poll_ops = {
    .backend = SEDA_POLLER_POLL,
    .trigger = SEDA_POLLER_LEVEL,
    .init = poll_init,
    .fini = poll_fini,
    .enter = NULL,
    .add = poll_add,
    .mod = poll_mod,
    .del = poll_del,
    .wait = poll_wait,
    .completion = NULL,
};
