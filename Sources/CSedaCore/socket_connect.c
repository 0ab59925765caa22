/*
 * Outgoing connections (seda_connect): a non-blocking connect on the chosen
 * loop, its completion seen as writability (or an error) through the
 * loop's poller on every backend, and a timeout through the loop's timers.
 * The outcome is CONNECTED (the connection then reads into the sink) or
 * CONNECT_FAILED (refused, unreachable, timed out, the runtime stopping).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime_internal.h"
#include "socket_internal.h"

static _Atomic uint32_t next_loop; /* outside callers: the loops in turn */

static void connected(seda_conn_t *c)
{
    seda__loop_timer_stop(c->loop, &c->connect_timer);
    c->flags &= ~SEDA__C_CONNECTING;
    seda__io_count(&c->io->st->connects, 1);
    struct seda__io_event *ev = seda__io_event_new(c->io, SEDA_IO_CONNECTED, c);
    if (ev)
        ev->pub.tag = c->connect_tag;
    seda__conn_start(c, ev);
    /* Output written before the connect completed (none can be: writes need
     * the connection, which CONNECTED brings) would go now. */
}

void seda__conn_connect_ready(seda_conn_t *c, uint32_t events)
{
    if (!(events & (SEDA_POLLER_OUT | SEDA_POLLER_ERR | SEDA_POLLER_HUP)))
        return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0 && (events & (SEDA_POLLER_ERR | SEDA_POLLER_HUP)))
        err = ECONNREFUSED; /* select cannot tell; HUP without an error */
    if (err)
        seda__conn_close_now(c, -err); /* CONNECT_FAILED */
    else
        connected(c);
}

static void connect_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled)
{
    (void)l;
    seda_conn_t *c = (seda_conn_t *)((char *)t - offsetof(seda_conn_t, connect_timer));
    if (!cancelled && (c->flags & SEDA__C_CONNECTING))
        seda__conn_close_now(c, -ETIMEDOUT);
}

/* On the chosen loop. */
static void connect_task(struct seda__loop *l, struct seda__task *t)
{
    seda_conn_t *c = (seda_conn_t *)((char *)t - offsetof(seda_conn_t, setup_task));
    struct seda__io *io = l->exiting ? NULL : seda__io_get(l);
    if (!io) { /* the runtime is stopping: nobody is left to tell */
        close(c->w.fd);
        c->w.fd = -1;
        seda_conn_release(c);
        return;
    }
    c->io = io;
    seda__io_ref(io);
    seda__conn_link(c); /* io_stop closes it like any other */
    int r = connect(c->w.fd, &c->peer.sa, c->peer_len);
    if (r == 0) {
        connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        seda__conn_close_now(c, -errno);
        return;
    }
    r = seda__loop_watch(l, &c->w, SEDA_POLLER_OUT);
    if (r < 0) {
        seda__conn_close_now(c, r);
        return;
    }
    c->flags |= SEDA__C_WATCHED;
    c->interest = SEDA_POLLER_OUT;
    if (c->connect_ns > 0) {
        int64_t now = seda__clock_now_fast(l->rt->clock);
        int64_t at = now > INT64_MAX - c->connect_ns ? INT64_MAX : now + c->connect_ns;
        seda__loop_timer_start(l, &c->connect_timer, at);
    }
}

int seda_connect(seda_runtime_t *rt, const seda_connect_options_t *o)
{
    if (!rt || !o || !o->host || !o->sink || o->timeout_ns < 0)
        return -EINVAL;
    uint32_t threads = seda_runtime_cpu_threads(rt);
    if (o->thread < -1 || (o->thread >= 0 && (uint32_t)o->thread >= threads))
        return -EINVAL;
    seda_conn_options_t co;
    if (seda__conn_options_resolve(&o->conn, &co) < 0)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (seda__sockaddr_parse(o->host, o->port, &ss, &sl) < 0)
        return -EINVAL;
    if (atomic_load(&rt->state) != SEDA__RT_RUNNING)
        return -EPIPE;
    uint32_t index;
    if (o->thread >= 0)
        index = (uint32_t)o->thread;
    else if (seda_runtime_thread_index(rt) >= 0)
        index = (uint32_t)seda_runtime_thread_index(rt);
    else
        index = atomic_fetch_add_explicit(&next_loop, 1, memory_order_relaxed) % threads;
    struct seda__loop *l = seda__loop_of(rt, index);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    seda_conn_t *c = seda__conn_new(l, fd, &co);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->flags |= SEDA__C_CONNECTING;
    memcpy(&c->peer, &ss, sl); /* IPv4 or IPv6: fits */
    c->peer_len = sl;
    c->connect_tag = o->tag;
    c->connect_ns = o->timeout_ns;
    c->connect_timer.fire = connect_fire;
    seda_stage_retain(o->sink);
    c->sink = o->sink;
    c->setup_task.run = connect_task;
    if (seda__loop_post(l, &c->setup_task))
        return 0;
    close(fd);
    c->w.fd = -1;
    seda_conn_release(c);
    return -EPIPE;
}
