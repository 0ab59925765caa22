/*
 * Listeners (include/seda/socket.h): one listening socket per loop with
 * SO_REUSEPORT (the kernel spreads connections over the loops; each loop
 * accepts for itself), or one socket on loop 0 whose connections are handed
 * to the loops in turn (SEDA_ACCEPT_HANDOFF, kept for comparison).
 *
 * Each socket is a "part" owned by its loop. A part accepts while it is
 * started, not suspended by the application, not paused for lack of
 * descriptors and not paused at the connection limit. Accepting means: on
 * io_uring without a limit, a multishot accept operation; otherwise
 * readiness (the listening socket in the loop's poller) and accept4 until
 * EAGAIN, up to a budget per poll.
 *
 * EMFILE / ENFILE / ENOBUFS / ENOMEM on accept: the part stops accepting for
 * SEDA__IO_EMFILE_PAUSE_NS (a loop timer) and logs once per episode; an
 * episode ends with the next successful accept. The pending connections
 * wait in the backlog meanwhile: no busy loop (a level-triggered poller
 * would otherwise report the listener on every poll).
 *
 * The connection limit (max_connections): `open` counts the listener's open
 * connections. A readiness part reserves a slot (fetch_add) before each
 * accept4; at the limit it pauses. Pausing and resuming race with
 * connections closing on other loops, which is settled by the store-load
 * pattern on two seq_cst variables: the pausing part increments max_paused
 * and then re-reads open; a closing connection decrements open and then
 * reads max_paused. Either the part sees the freed slot and goes on, or the
 * closer sees the paused part and posts it a resume. A reservation that
 * ends unused (accept4 found nothing) is given back the same way: another
 * part may have paused on seeing that slot taken.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime_internal.h"
#include "socket_internal.h"

/* accept4 calls per readiness report before the loop does something else. */
#define ACCEPT_BUDGET 64

enum ctl_op { CTL_START, CTL_SUSPEND, CTL_RESUME, CTL_CLOSE, CTL_RESUME_MAX };

struct ctl {
    struct seda__task task;
    struct seda__listen_part *part;
    int op;
};

static void part_update(struct seda__listen_part *p);
static void part_close(struct seda__listen_part *p);

/* ---- addresses ------------------------------------------------------------------ */

int seda__sockaddr_parse(const char *host, uint16_t port, struct sockaddr_storage *ss,
                         socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (!host)
        host = "0.0.0.0";
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
        return 0;
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
        return 0;
    }
    return -EINVAL;
}

/* ---- references -------------------------------------------------------------------- */

void seda_listener_retain(seda_listener_t *ls)
{
    atomic_fetch_add_explicit(&ls->refs, 1, memory_order_relaxed);
}

void seda_listener_release(seda_listener_t *ls)
{
    if (!ls || atomic_fetch_sub_explicit(&ls->refs, 1, memory_order_acq_rel) != 1)
        return;
    uint32_t n = seda_runtime_cpu_threads(ls->rt);
    if (ls->accept_sink)
        seda_stage_release(ls->accept_sink);
    if (ls->read_sinks) {
        for (uint32_t i = 0; i < n; i++)
            seda_stage_release(ls->read_sinks[i]);
        free(ls->read_sinks);
    }
    seda_runtime_t *rt = ls->rt;
    free(ls);
    seda__runtime_release(rt);
}

seda_stage_t *seda__listener_read_sink(const seda_listener_t *ls, uint32_t i)
{
    return ls->read_sinks ? ls->read_sinks[i] : NULL;
}

uint16_t seda_listener_port(const seda_listener_t *ls)
{
    return ls->port;
}

uint32_t seda_listener_connections(const seda_listener_t *ls)
{
    return atomic_load_explicit(&((seda_listener_t *)ls)->open, memory_order_relaxed);
}

/* ---- control posts --------------------------------------------------------------------- */

static void ctl_run(struct seda__loop *l, struct seda__task *t);

/* A post holds a reference on the listener until it has run: a resume
 * posted by a closing connection may run after the part's own close has
 * dropped the part's reference (and the connection its own). */
static bool ctl_post(struct seda__listen_part *p, int op)
{
    struct ctl *c = malloc(sizeof *c);
    if (!c)
        return false;
    c->task.run = ctl_run;
    c->part = p;
    c->op = op;
    seda_listener_retain(p->ls);
    if (seda__loop_post(p->loop, &c->task))
        return true;
    seda_listener_release(p->ls);
    free(c);
    return false;
}

/* The part's reference on its listener goes once it is closed and its
 * operations have ended. */
static void part_maybe_done(struct seda__listen_part *p)
{
    if (!p->closed || p->live_ops > 0 || p->done)
        return;
    p->done = true;
    struct seda__io *io = p->io;
    seda_listener_t *ls = p->ls;
    if (p->finishing) {
        p->finishing = false;
        io->finishing--;
    }
    seda_listener_release(ls);
    if (io)
        seda__io_unref(io);
}

static void ctl_op(struct seda__loop *l, struct seda__listen_part *p, int op);

static void ctl_run(struct seda__loop *l, struct seda__task *t)
{
    struct ctl *c = (struct ctl *)t;
    struct seda__listen_part *p = c->part;
    seda_listener_t *ls = p->ls;
    int op = c->op;
    free(c);
    ctl_op(l, p, op);
    seda_listener_release(ls); /* the post's */
}

static void ctl_op(struct seda__loop *l, struct seda__listen_part *p, int op)
{
    if (op == CTL_START) {
        struct seda__io *io = l->exiting ? NULL : seda__io_get(l);
        p->started = true;
        if (!io) { /* the loop is going away (or no memory): the part closes */
            part_close(p);
            return;
        }
        p->io = io;
        seda__io_ref(io);
        p->next = io->parts;
        io->parts = p;
        p->multishot = io->uring != NULL && p->ls->max == 0;
    } else if (op == CTL_SUSPEND) {
        p->suspended = true;
    } else if (op == CTL_RESUME) {
        p->suspended = false;
    } else if (op == CTL_RESUME_MAX) {
        atomic_store_explicit(&p->resume_posted, false, memory_order_seq_cst);
        if (p->paused_max) {
            p->paused_max = false;
            atomic_fetch_sub_explicit(&p->ls->max_paused, 1, memory_order_seq_cst);
        }
    } else if (op == CTL_CLOSE) {
        part_close(p);
        return;
    }
    part_update(p);
}

/* ---- accepting --------------------------------------------------------------------------- */

static bool part_wants(const struct seda__listen_part *p)
{
    return p->started && !p->closed && !p->suspended && !p->paused_emfile && !p->paused_max &&
           !p->loop->exiting;
}

static void emfile_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled)
{
    (void)l;
    struct seda__listen_part *p =
        (struct seda__listen_part *)((char *)t - offsetof(struct seda__listen_part, pause_timer));
    if (cancelled)
        return;
    p->paused_emfile = false;
    part_update(p);
}

/* Out of descriptors (or kernel memory): pause, log once per episode. */
static void emfile(struct seda__listen_part *p, int err)
{
    struct seda__io *io = p->io;
    if (!p->logged) {
        p->logged = true;
        seda__io_count(&io->st->emfile_episodes, 1);
        seda__io_log(p->ls->log, p->ls->log_ctx,
                     "accept on port %u (thread %u): %s; accepting pauses for %lld ms at a time "
                     "until descriptors free up",
                     p->ls->port, p->loop->index, strerror(-err),
                     (long long)(SEDA__IO_EMFILE_PAUSE_NS / 1000000));
    }
    p->paused_emfile = true;
    seda__loop_timer_start(p->loop, &p->pause_timer, seda__io_now(io) + SEDA__IO_EMFILE_PAUSE_NS);
    part_update(p);
}

static void setup_fail(seda_conn_t *c)
{
    close(c->w.fd);
    c->w.fd = -1;
    if (c->listener) {
        seda__listener_conn_closed(c->listener);
        seda_listener_release(c->listener);
        c->listener = NULL;
    }
    seda_conn_release(c); /* the loop's, the only one: frees c */
}

/* On the connection's loop: the rest of its setup. */
static void setup_conn(seda_conn_t *c)
{
    struct seda__loop *l = c->loop;
    struct seda__io *io = l->exiting ? NULL : seda__io_get(l);
    if (!io) {
        setup_fail(c);
        return;
    }
    c->io = io;
    seda__io_ref(io);
    if (c->peer_len == 0) { /* io_uring's multishot accept gives no address */
        c->peer_len = sizeof c->peer;
        if (getpeername(c->w.fd, &c->peer.sa, &c->peer_len) < 0)
            c->peer_len = 0;
    }
    seda__io_count(&io->st->accepted, 1);
    seda_listener_t *ls = c->listener;
    struct seda__io_event *first = NULL;
    if (ls->accept_sink) {
        first = seda__io_event_new(io, SEDA_IO_ACCEPTED, c);
        if (first) {
            first->dest = ls->accept_sink; /* the event's listener reference keeps it */
            first->pub.listener = ls;
            seda_listener_retain(ls);
        }
    }
    seda__conn_start(c, first);
}

static void setup_task(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    setup_conn((seda_conn_t *)((char *)t - offsetof(seda_conn_t, setup_task)));
}

/* A new connection fd (counted in ls->open already). */
static void accepted(struct seda__listen_part *p, int fd, const struct sockaddr_storage *ss,
                     socklen_t sl)
{
    seda_listener_t *ls = p->ls;
    if (p->logged)
        p->logged = false; /* the descriptor episode is over */
    struct seda__loop *target = p->loop;
    if (ls->mode == SEDA_ACCEPT_HANDOFF) {
        uint32_t n = seda_runtime_cpu_threads(ls->rt);
        uint32_t k = atomic_fetch_add_explicit(&ls->next_loop, 1, memory_order_relaxed) % n;
        target = seda__loop_of(ls->rt, k);
    }
    seda_conn_t *c = seda__conn_new(target, fd, &ls->conn);
    if (!c) {
        close(fd);
        seda__io_count(&p->io->st->refused, 1);
        seda__listener_conn_closed(ls);
        return;
    }
    if (ss && sl <= sizeof c->peer) {
        memcpy(&c->peer, ss, sl);
        c->peer_len = sl;
    }
    seda_listener_retain(ls);
    c->listener = ls;
    seda_stage_t *sink = seda__listener_read_sink(ls, target->index);
    if (sink) {
        seda_stage_retain(sink);
        c->sink = sink;
    }
    if (target == p->loop) {
        setup_conn(c);
        return;
    }
    c->setup_task.run = setup_task;
    if (!seda__loop_post(target, &c->setup_task)) {
        seda__io_count(&p->io->st->refused, 1);
        setup_fail(c);
    }
}

/* At the connection limit: pause, unless a slot freed meanwhile (then the
 * caller retries). Returns whether it paused. */
static bool pause_max(struct seda__listen_part *p)
{
    seda_listener_t *ls = p->ls;
    p->paused_max = true;
    /* seq_cst RMW then seq_cst load; pairs with seda__listener_conn_closed. */
    atomic_fetch_add_explicit(&ls->max_paused, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&ls->open, memory_order_seq_cst) < ls->max) {
        p->paused_max = false;
        atomic_fetch_sub_explicit(&ls->max_paused, 1, memory_order_seq_cst);
        return false;
    }
    part_update(p);
    return true;
}

void seda__listener_conn_closed(seda_listener_t *ls)
{
    /* seq_cst RMW then seq_cst load; pairs with pause_max. */
    atomic_fetch_sub_explicit(&ls->open, 1, memory_order_seq_cst);
    if (ls->max == 0 || atomic_load_explicit(&ls->max_paused, memory_order_seq_cst) == 0)
        return;
    for (uint32_t i = 0; i < ls->nparts; i++) {
        struct seda__listen_part *p = &ls->parts[i];
        if (!atomic_exchange_explicit(&p->resume_posted, true, memory_order_seq_cst) &&
            !ctl_post(p, CTL_RESUME_MAX))
            atomic_store_explicit(&p->resume_posted, false, memory_order_seq_cst);
    }
}

/* Readiness: accept until EAGAIN (or the budget, the limit, an error). */
static void part_ready(struct seda__loop *l, struct seda__watcher *w, uint32_t events)
{
    (void)events;
    struct seda__listen_part *p = (struct seda__listen_part *)w;
    seda_listener_t *ls = p->ls;
    seda__io_clock(p->io);
    for (int k = 0; k < ACCEPT_BUDGET; k++) {
        if (!part_wants(p))
            return;
        uint32_t open = atomic_fetch_add_explicit(&ls->open, 1, memory_order_seq_cst);
        if (ls->max && open >= ls->max) {
            atomic_fetch_sub_explicit(&ls->open, 1, memory_order_seq_cst);
            if (pause_max(p))
                return;
            k--;
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(p->w.fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accepted(p, fd, &ss, sl);
            continue;
        }
        int err = -errno;
        /* The slot was not used: give it back like a closed connection's, so
         * that a part that paused on seeing it taken is resumed. */
        seda__listener_conn_closed(ls);
        if (err == -EAGAIN || err == -EWOULDBLOCK)
            return;
        if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
            emfile(p, err);
            return;
        }
        /* ECONNABORTED, EINTR, EPROTO, network errors of the new socket:
         * that connection is gone; go on with the next. */
    }
    /* Budget used up: edge-triggered pollers will not report the rest;
     * re-arming reports what is pending now. */
    if (p->io->edge && p->watching)
        seda__loop_rewatch(l, &p->w, SEDA_POLLER_IN);
}

/* io_uring: multishot accept completions. */
static void part_complete(struct seda__loop *l, struct seda__watcher *w,
                          const struct seda__poller_completion *cp)
{
    struct seda__listen_part *p = (struct seda__listen_part *)w;
    seda__io_clock(p->io);
    bool last = !(cp->flags & SEDA__POLLER_MORE);
    if (last) {
        p->live_ops--;
        l->watchers--;
        if (cp->op == p->accept_op)
            p->accept_op = 0;
    }
    if (cp->res >= 0) {
        atomic_fetch_add_explicit(&p->ls->open, 1, memory_order_seq_cst);
        if (p->closed || l->exiting) {
            close(cp->res);
            seda__io_count(&p->io->st->refused, 1);
            seda__listener_conn_closed(p->ls);
        } else {
            accepted(p, cp->res, NULL, 0);
        }
    } else if (last && cp->res != -ECANCELED &&
               (cp->res == -EMFILE || cp->res == -ENFILE || cp->res == -ENOBUFS ||
                cp->res == -ENOMEM)) {
        emfile(p, cp->res);
    }
    if (last) {
        part_update(p); /* ended by an error: armed again if it should be */
        part_maybe_done(p);
    }
}

/* Arms or disarms p to match part_wants. */
static void part_update(struct seda__listen_part *p)
{
    struct seda__io *io = p->io;
    struct seda__loop *l = p->loop;
    if (!io)
        return;
    bool want = part_wants(p);
    if (p->multishot) {
        if (want && !p->accept_op) {
            if (io->uring->accept(l->poller, p->w.fd, &p->w, &p->accept_op) == 0) {
                p->live_ops++;
                l->watchers++;
            }
        } else if (!want && p->accept_op) {
            /* Its last completion comes later (connections it accepted
             * meanwhile are still delivered, not lost). */
            if (io->uring->stop(l->poller, p->accept_op) >= 0)
                p->accept_op = 0;
        }
        return;
    }
    if (want && !p->watching) {
        if (seda__loop_watch(l, &p->w, SEDA_POLLER_IN) == 0)
            p->watching = true;
    } else if (!want && p->watching) {
        seda__loop_unwatch(l, &p->w);
        p->watching = false;
    }
}

static void part_close(struct seda__listen_part *p)
{
    if (p->closed)
        return;
    p->closed = true;
    struct seda__io *io = p->io;
    if (io) {
        part_update(p); /* disarms */
        seda__loop_timer_stop(p->loop, &p->pause_timer);
        for (struct seda__listen_part **link = &io->parts; *link; link = &(*link)->next) {
            if (*link == p) {
                *link = p->next;
                break;
            }
        }
        if (p->live_ops > 0) {
            p->finishing = true;
            io->finishing++;
        }
    }
    if (p->paused_max) {
        p->paused_max = false;
        atomic_fetch_sub_explicit(&p->ls->max_paused, 1, memory_order_seq_cst);
    }
    close(p->w.fd);
    p->w.fd = -1;
    part_maybe_done(p);
}

void seda__listen_stop_loop(struct seda__io *io)
{
    while (io->parts)
        part_close(io->parts);
}

/* ---- the public calls ---------------------------------------------------------------------- */

static int open_socket(const struct sockaddr_storage *ss, socklen_t len, int backlog,
                       bool reuseport, int *out)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    int r = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, backlog) < 0)
        r = -errno;
    if (r < 0) {
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

int seda_listen(seda_runtime_t *rt, const seda_listen_options_t *o, seda_listener_t **out)
{
    if (!rt || !o || !out)
        return -EINVAL;
    if (o->accept_mode != SEDA_ACCEPT_REUSEPORT && o->accept_mode != SEDA_ACCEPT_HANDOFF)
        return -EINVAL;
    if (!o->accept_sink && !o->read_sink && !o->read_sinks)
        return -EINVAL;
    uint32_t threads = seda_runtime_cpu_threads(rt);
    if (o->read_sinks)
        for (uint32_t i = 0; i < threads; i++)
            if (!o->read_sinks[i])
                return -EINVAL;
    seda_conn_options_t co;
    if (seda__conn_options_resolve(&o->conn, &co) < 0 || o->backlog < 0)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (seda__sockaddr_parse(o->host, o->port, &ss, &sl) < 0)
        return -EINVAL;
    if (atomic_load(&rt->state) != SEDA__RT_RUNNING)
        return -EPIPE;

    uint32_t nparts = o->accept_mode == SEDA_ACCEPT_HANDOFF ? 1 : threads;
    seda_listener_t *ls = calloc(1, sizeof *ls + nparts * sizeof ls->parts[0]);
    if (!ls)
        return -ENOMEM;
    ls->read_sinks = o->read_sinks || o->read_sink ? calloc(threads, sizeof *ls->read_sinks) : NULL;
    if ((o->read_sinks || o->read_sink) && !ls->read_sinks) {
        free(ls);
        return -ENOMEM;
    }
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed); /* the listener's */
    ls->rt = rt;
    atomic_init(&ls->refs, 1);
    ls->mode = o->accept_mode;
    ls->conn = co;
    ls->max = o->max_connections;
    ls->log = o->log;
    ls->log_ctx = o->log_ctx;
    ls->nparts = nparts;
    if (o->accept_sink) {
        seda_stage_retain(o->accept_sink);
        ls->accept_sink = o->accept_sink;
    }
    for (uint32_t i = 0; ls->read_sinks && i < threads; i++) {
        ls->read_sinks[i] = o->read_sinks ? o->read_sinks[i] : o->read_sink;
        seda_stage_retain(ls->read_sinks[i]);
    }
    int backlog = o->backlog ? o->backlog : 511;
    int r = 0;
    uint32_t opened = 0;
    for (; opened < nparts; opened++) {
        struct seda__listen_part *p = &ls->parts[opened];
        r = open_socket(&ss, sl, backlog, o->accept_mode == SEDA_ACCEPT_REUSEPORT, &p->w.fd);
        if (r < 0)
            break;
        if (p->w.fd >= FD_SETSIZE && seda_runtime_poller(rt) == SEDA_POLLER_SELECT) {
            /* select cannot watch it: the listener would never accept. */
            close(p->w.fd);
            r = -EMFILE;
            break;
        }
        if (opened == 0) { /* port 0: the others bind the port the first got */
            struct sockaddr_storage bound;
            socklen_t bl = sizeof bound;
            getsockname(p->w.fd, (struct sockaddr *)&bound, &bl);
            uint16_t port = bound.ss_family == AF_INET6
                                ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
            ls->port = port;
            if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
            else
                ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        }
    }
    if (r < 0) {
        for (uint32_t i = 0; i < opened; i++)
            close(ls->parts[i].w.fd);
        seda_listener_release(ls);
        return r;
    }
    for (uint32_t i = 0; i < nparts; i++) {
        struct seda__listen_part *p = &ls->parts[i];
        p->w.on_ready = part_ready;
        p->w.on_complete = part_complete;
        p->ls = ls;
        p->loop = seda__loop_of(rt, i);
        p->pause_timer.fire = emfile_fire;
        seda_listener_retain(ls); /* the part's, until it is closed */
    }
    bool refused = false;
    for (uint32_t i = 0; i < nparts; i++) {
        if (!ctl_post(&ls->parts[i], CTL_START)) {
            /* The loop has exited (the runtime is stopping): close it here. */
            struct seda__listen_part *p = &ls->parts[i];
            p->closed = true;
            close(p->w.fd);
            p->w.fd = -1;
            p->done = true;
            seda_listener_release(ls);
            refused = true;
        }
    }
    if (refused) {
        seda_listener_close(ls);
        return -EPIPE;
    }
    *out = ls;
    return 0;
}

static int ctl_all(seda_listener_t *ls, int op)
{
    if (!ls)
        return -EINVAL;
    if (atomic_load_explicit(&ls->closed, memory_order_relaxed))
        return -EPIPE;
    for (uint32_t i = 0; i < ls->nparts; i++)
        ctl_post(&ls->parts[i], op); /* refused: the loop has exited, the part is closed */
    return 0;
}

int seda_listener_suspend(seda_listener_t *ls)
{
    return ctl_all(ls, CTL_SUSPEND);
}

int seda_listener_resume(seda_listener_t *ls)
{
    return ctl_all(ls, CTL_RESUME);
}

void seda_listener_close(seda_listener_t *ls)
{
    if (!ls)
        return;
    if (!atomic_exchange_explicit(&ls->closed, true, memory_order_relaxed))
        for (uint32_t i = 0; i < ls->nparts; i++)
            ctl_post(&ls->parts[i], CTL_CLOSE);
    seda_listener_release(ls);
}
