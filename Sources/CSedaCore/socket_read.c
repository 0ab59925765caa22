/*
 * Reading (socket_internal.h). Three ways, one result: PACKET events in
 * order, with the connection's sequence numbers, into its sink.
 *
 *  - epoll (edge): on readiness, receive into pooled buffers, one PACKET per
 *    receive, up to SEDA__IO_READ_BUDGET receives per connection per poll;
 *    a connection that used its budget goes on the ready list and is served
 *    after the next poll, which then does not block (io_more). A receive
 *    shorter than the buffer has emptied the socket: the next byte to
 *    arrive raises a new edge, so no receive is wasted on EAGAIN (unless the
 *    peer's FIN was seen: then read on to the end of stream). That saves one
 *    system call per request on small request/response traffic.
 *  - select, poll (level): the same receive loop; the poller reports a
 *    connection that still has input again, so no ready list. Interest is
 *    toggled in user space (seda__conn_update_interest).
 *  - io_uring: a multishot recv per connection into the loop's provided
 *    buffer ring; the kernel picks the buffer, one completion per chunk;
 *    re-armed only when buffers come back (the poller parks it on -ENOBUFS).
 *    The same budget per poll: a connection that received its budget in one
 *    poll has its recv stopped (BUDGET) and re-armed after the next poll
 *    (the ready list), so a fast sender cannot fill the loop's whole ring,
 *    and its handler's output, before the loop flushes once. Without it one
 *    connection streaming at loopback speed delivered 100 chunks (1.6 MB)
 *    in one poll. Request/response traffic never reaches the budget.
 *
 * Input memory is bounded either way: io_uring by its ring, the readiness
 * backends by SEDA__IO_READ_BUFS_MAX buffers per loop; past it connections
 * wait on the starved list until the application releases packets.
 * Flow control: input stops while the application asked it to
 * (seda_conn_read_stop) or while the connection's events wait for a full
 * sink (STALLED); io_uring stops the recv, the others just stop receiving.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_internal.h"

/* ---- the ready and starved lists ---------------------------------------------- */

static void list_push(seda_conn_t **head, seda_conn_t **tail, seda_conn_t *c)
{
    seda_conn_retain(c); /* the list's: c may close while it waits */
    c->ready_next = NULL;
    if (*tail)
        (*tail)->ready_next = c;
    else
        *head = c;
    *tail = c;
}

void seda__conn_ready_push(seda_conn_t *c)
{
    struct seda__io *io = c->io;
    if (c->flags & (SEDA__C_READY | SEDA__C_STARVED))
        return;
    c->flags |= SEDA__C_READY;
    list_push(&io->ready_head, &io->ready_tail, c);
    io->loop->io_more = true;
}

static void starve(struct seda__io *io, seda_conn_t *c)
{
    if (c->flags & SEDA__C_STARVED)
        return;
    c->flags |= SEDA__C_STARVED;
    list_push(&io->starved_head, &io->starved_tail, c);
    seda__conn_update_interest(c); /* level: stop watching input meanwhile */
}

/* io_uring: a connection that used its budget in an earlier poll: this
 * poll's budget of held packets, then the recv again once none is held. */
static void serve_budget(struct seda__io *io, seda_conn_t *c)
{
    if (!(c->flags & SEDA__C_BUDGET) || (c->flags & SEDA__C_STALLED))
        return;                              /* the stalled list has it now */
    bool closed = c->flags & SEDA__C_CLOSED; /* no more input: all of it now */
    if (!closed && !(c->flags & SEDA__C_READING))
        return; /* read_stop: what was received waits for read_start */
    c->recv_poll = io->polls;
    c->recv_turn = SEDA__IO_READ_BUDGET;
    int r = seda__conn_deliver_pending(c, closed ? UINT32_MAX : SEDA__IO_READ_BUDGET);
    if (r == SEDA__PEND_FULL) {
        seda__conn_stall(c);
    } else if (r == SEDA__PEND_BUDGET) {
        seda__conn_ready_push(c);
    } else {
        c->flags &= ~SEDA__C_BUDGET;
        c->recv_turn = 0;
        seda__conn_input_update(c); /* re-arms the recv */
    }
}

void seda__io_serve_ready(struct seda__io *io)
{
    /* Starved connections first, as buffers allow. */
    while (io->starved_head && io->read_bufs_out < SEDA__IO_READ_BUFS_MAX) {
        seda_conn_t *c = io->starved_head;
        io->starved_head = c->ready_next;
        if (!io->starved_head)
            io->starved_tail = NULL;
        c->flags &= ~SEDA__C_STARVED;
        if (!(c->flags & SEDA__C_CLOSED)) {
            if (io->edge)
                seda__conn_read(c);
            else
                seda__conn_update_interest(c);
        }
        seda_conn_release(c);
    }
    /* Those that used their budget: once each; whoever uses it again waits
     * for the next round. */
    seda_conn_t *c = io->ready_head;
    io->ready_head = io->ready_tail = NULL;
    while (c) {
        seda_conn_t *next = c->ready_next;
        c->flags &= ~SEDA__C_READY;
        if (io->uring) {
            serve_budget(io, c);
        } else if (seda__conn_wants_input(c)) {
            seda__conn_read(c);
        }
        seda_conn_release(c);
        c = next;
    }
    if (io->ready_head)
        io->loop->io_more = true;
}

/* ---- end of stream ----------------------------------------------------------------- */

static void read_eof(seda_conn_t *c)
{
    c->flags |= SEDA__C_EOF;
    struct seda__io_event *ev = seda__io_event_new(c->io, SEDA_IO_READ_EOF, c);
    if (ev)
        seda__conn_deliver(c, ev);
    seda__conn_input_update(c);
}

/* ---- readiness: receive into pooled buffers ----------------------------------------------- */

void seda__conn_read(seda_conn_t *c)
{
    struct seda__io *io = c->io;
    for (int turn = 0; turn < SEDA__IO_READ_BUDGET; turn++) {
        if (!seda__conn_wants_input(c))
            return;
        if (io->read_bufs_out >= SEDA__IO_READ_BUFS_MAX) {
            starve(io, c);
            return;
        }
        void *buf = seda__io_buf_get(io);
        if (!buf) {
            seda__conn_close_now(c, -ENOMEM);
            return;
        }
        ssize_t n = recv(c->w.fd, buf, SEDA__IO_BUF_SIZE, 0);
        seda__io_count(&io->st->reads, 1);
        if (n > 0) {
            struct seda__io_event *ev = seda__io_event_new(io, SEDA_IO_PACKET, c);
            if (!ev) {
                seda__io_buf_put(io, buf);
                seda__conn_close_now(c, -ENOMEM);
                return;
            }
            io->read_bufs_out++;
            ev->buf = buf;
            ev->pub.data = buf;
            ev->pub.len = (size_t)n;
            ev->pub.seq = c->seq++;
            seda__io_count(&io->st->packets_in, 1);
            seda__io_count(&io->st->bytes_in, (uint64_t)n);
            seda__conn_touch(c);
            seda__conn_deliver(c, ev);
            if ((size_t)n < SEDA__IO_BUF_SIZE && !(c->flags & SEDA__C_RDHUP))
                return; /* the socket is empty: see the top of this file */
            continue;
        }
        seda__io_buf_put(io, buf);
        if (n == 0) {
            read_eof(c);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EINTR)
            continue;
        seda__conn_close_now(c, -errno);
        return;
    }
    /* Budget used up: more may be waiting, and an edge-triggered poller will
     * not say so again. */
    if (io->edge)
        seda__conn_ready_push(c);
}

/* ---- io_uring: multishot recv ------------------------------------------------------------- */

void seda__conn_recv_complete(seda_conn_t *c, const struct seda__poller_completion *cp)
{
    struct seda__io *io = c->io;
    bool last = !(cp->flags & SEDA__POLLER_MORE);
    if (last) {
        c->recv_op = 0;
        c->flags &= ~SEDA__C_RECV_STOPPING;
    }
    if (cp->res > 0) {
        seda__io_count(&io->st->reads, 1);
        struct seda__io_event *ev =
            c->flags & SEDA__C_CLOSED ? NULL : seda__io_event_new(io, SEDA_IO_PACKET, c);
        if (!ev) {
            io->uring->buffer_put(c->loop->poller, io->ring, cp->buf_id);
        } else {
            /* Delivered even when stopped: bytes received are never lost. */
            ev->ring_id = cp->buf_id;
            ev->pub.data = cp->buf;
            ev->pub.len = (size_t)cp->res;
            ev->pub.seq = c->seq++;
            seda__io_count(&io->st->packets_in, 1);
            seda__io_count(&io->st->bytes_in, (uint64_t)cp->res);
            seda__conn_touch(c);
            if (c->recv_poll != io->polls) {
                c->recv_poll = io->polls;
                c->recv_turn = 0;
            }
            if (c->flags & SEDA__C_BUDGET) {
                seda__conn_hold(c, ev); /* after the stop, or beyond the budget */
            } else {
                seda__conn_deliver(c, ev);
                if (++c->recv_turn >= SEDA__IO_READ_BUDGET && !(c->flags & SEDA__C_CLOSED)) {
                    c->flags |= SEDA__C_BUDGET; /* the rest waits for the next poll */
                    seda__conn_input_update(c);
                    if (!(c->flags & SEDA__C_STALLED))
                        seda__conn_ready_push(c);
                }
            }
        }
    } else if (cp->res == 0) {
        if (!(c->flags & (SEDA__C_CLOSED | SEDA__C_EOF)))
            read_eof(c);
    } else if (cp->res != -ECANCELED && !(c->flags & SEDA__C_CLOSED)) {
        seda__conn_close_now(c, cp->res);
    }
    if (last) {
        if (c->flags & SEDA__C_CLOSED)
            seda__conn_maybe_finish(c);
        else
            seda__conn_input_update(c); /* wanted again since the stop: re-arm */
    }
}

/* ---- flow control ---------------------------------------------------------------------- */

void seda__conn_input_update(seda_conn_t *c)
{
    struct seda__io *io = c->io;
    if (c->flags & SEDA__C_CLOSED)
        return;
    bool want = seda__conn_wants_input(c);
    if (io->uring) {
        /* Packets held past the budget go before any new input. */
        if ((c->flags & (SEDA__C_BUDGET | SEDA__C_READING | SEDA__C_STALLED)) ==
            (SEDA__C_BUDGET | SEDA__C_READING))
            seda__conn_ready_push(c);
        if (want && !c->recv_op) {
            int r = io->uring->recv(c->loop->poller, c->w.fd, io->ring, &c->w, &c->recv_op);
            if (r < 0)
                seda__conn_close_now(c, r);
        } else if (!want && c->recv_op && !(c->flags & SEDA__C_RECV_STOPPING)) {
            int r = io->uring->stop(c->loop->poller, c->recv_op);
            if (r == 1)
                c->recv_op = 0; /* it waited for a buffer: ended now */
            else if (r == 0)
                c->flags |= SEDA__C_RECV_STOPPING; /* its last completion re-arms if wanted */
        }
    } else if (io->edge) {
        /* Input that arrived while stopped raised its edge then: look now. */
        if (want && !(c->flags & SEDA__C_INPUT_ON))
            seda__conn_ready_push(c);
        if (want)
            c->flags |= SEDA__C_INPUT_ON;
        else
            c->flags &= ~SEDA__C_INPUT_ON;
    } else {
        seda__conn_update_interest(c);
    }
}
