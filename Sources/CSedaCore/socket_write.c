/*
 * The output queue (socket_internal.h): what the application writes is
 * appended to the connection's queue with no system call (copies coalesce in
 * pooled 16 KiB chunks, zero-copy buffers and file regions are referenced),
 * and the loop flushes each connection that has output once, before it next
 * polls (seda__loop_defer): one sendmsg over up to SEDA__IO_IOV iovecs
 * (MSG_NOSIGNAL), or on io_uring one send SQE per connection with one in
 * flight at a time (the rest goes after its completion, short sends
 * resubmitted), or sendfile(2) for a file region at the head.
 *
 * Limits. `queued` counts the bytes of memory waiting (copies and zero-copy
 * buffers; file regions hold none). Crossing high_watermark delivers
 * UNWRITABLE; falling to low_watermark afterwards WRITABLE. A write that
 * would pass hard_limit closes the connection (SEDA_CLOG_CLOSE) or is
 * refused with -ENOBUFS and CLOGGED delivered once (SEDA_CLOG_NOTIFY): a
 * slow reader holds at most hard_limit bytes of the server's memory.
 *
 * Readiness backends: a short write means the socket buffer is full; the
 * connection then waits for writability (OUT_WAIT: epoll reports OUT on the
 * edge it is registered for; select and poll add OUT to its interest; on
 * io_uring, where a send simply waits in the kernel, only sendfile can meet
 * EAGAIN, and the connection is then registered for readiness).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "socket_internal.h"

/* sendfile(2) at most this much per call (the kernel's own cap is ~2 GiB). */
#define SENDFILE_CHUNK (1u << 30)

static inline size_t queued(const seda_conn_t *c)
{
    return atomic_load_explicit(&((seda_conn_t *)c)->queued, memory_order_relaxed);
}

static inline void set_queued(seda_conn_t *c, size_t v)
{
    /* Owner writes; seda_conn_queued reads a relaxed snapshot. */
    atomic_store_explicit(&c->queued, v, memory_order_relaxed);
}

static void event(seda_conn_t *c, uint32_t type, uint64_t tag)
{
    struct seda__io_event *ev = seda__io_event_new(c->io, type, c);
    if (ev) {
        ev->pub.tag = tag;
        seda__conn_deliver(c, ev);
    }
}

/* ---- queueing --------------------------------------------------------------------- */

/* May `bytes` more be queued? 0, -EPIPE or -ENOBUFS (policies applied). */
static int admit(seda_conn_t *c, size_t bytes)
{
    if (c->flags & (SEDA__C_CLOSED | SEDA__C_WR_SHUT))
        return -EPIPE;
    if (bytes == 0)
        return 0;
    if (c->flags & SEDA__C_CLOGGED)
        return -ENOBUFS;
    size_t q = queued(c);
    if (bytes <= c->o.hard_limit && q <= c->o.hard_limit - bytes)
        return 0;
    seda__io_count(&c->io->st->clogged, 1);
    if (c->o.clog_policy == SEDA_CLOG_NOTIFY) {
        c->flags |= SEDA__C_CLOGGED;
        event(c, SEDA_IO_CLOGGED, 0);
        /* One write larger than the whole limit, on a queue at or below the
         * low watermark: nothing will drain to end the episode, so it ends
         * now (else every later write would be refused for ever). */
        if (q <= c->o.low_watermark && !(c->flags & SEDA__C_CLOSED)) {
            c->flags &= ~(SEDA__C_CLOGGED | SEDA__C_UNWRITABLE);
            event(c, SEDA_IO_WRITABLE, 0);
        }
        return -ENOBUFS;
    }
    seda__conn_close_now(c, -ENOBUFS);
    return -EPIPE;
}

static void append(seda_conn_t *c, struct seda__out *o)
{
    o->next = NULL;
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
}

/* After bytes were queued: the high watermark, and a flush. */
static void queued_more(seda_conn_t *c, size_t bytes)
{
    size_t q = queued(c) + bytes;
    set_queued(c, q);
    if (q >= c->o.high_watermark && !(c->flags & SEDA__C_UNWRITABLE)) {
        c->flags |= SEDA__C_UNWRITABLE;
        event(c, SEDA_IO_UNWRITABLE, 0);
    }
    seda__conn_flush_later(c);
}

/* After bytes were sent: the low watermark. */
static void queued_less(seda_conn_t *c, size_t bytes)
{
    size_t q = queued(c) - bytes;
    set_queued(c, q);
    if (q <= c->o.low_watermark && (c->flags & (SEDA__C_UNWRITABLE | SEDA__C_CLOGGED))) {
        c->flags &= ~(SEDA__C_UNWRITABLE | SEDA__C_CLOGGED);
        event(c, SEDA_IO_WRITABLE, 0);
    }
}

int seda__conn_write_copy(seda_conn_t *c, const void *buf, size_t len)
{
    int r = admit(c, len);
    if (r < 0 || len == 0)
        return r;
    struct seda__io *io = c->io;
    const uint8_t *src = buf;
    size_t left = len;
    while (left) {
        struct seda__out *o = c->out_tail;
        size_t room = 0;
        if (o && o->kind == SEDA__OUT_COPY)
            room = (size_t)((const uint8_t *)o->base + SEDA__IO_BUF_SIZE - (o->ptr + o->len));
        if (room == 0) {
            void *b = seda__io_buf_get(io);
            o = b ? seda__io_out_get(io) : NULL;
            if (!o) {
                if (b)
                    seda__io_buf_put(io, b);
                /* Out of memory part way: what was copied is queued. */
                if (left < len)
                    queued_more(c, len - left);
                return -ENOMEM;
            }
            o->kind = SEDA__OUT_COPY;
            o->base = b;
            o->ptr = b;
            append(c, o);
            room = SEDA__IO_BUF_SIZE;
        }
        size_t n = left < room ? left : room;
        memcpy((uint8_t *)o->ptr + o->len, src, n);
        o->len += n;
        src += n;
        left -= n;
    }
    queued_more(c, len);
    return 0;
}

int seda__conn_write_ref(seda_conn_t *c, const void *buf, size_t len, seda_write_release_fn release,
                         void *ctx)
{
    int r = admit(c, len);
    if (r < 0)
        return r;
    struct seda__out *o = seda__io_out_get(c->io);
    if (!o)
        return -ENOMEM;
    o->kind = SEDA__OUT_REF;
    o->base = (void *)buf;
    o->ptr = buf;
    o->len = len;
    o->release = release;
    o->ctx = ctx;
    append(c, o);
    queued_more(c, len);
    return 0;
}

int seda__conn_write_file(seda_conn_t *c, int fd, uint64_t off, uint64_t len,
                          seda_write_release_fn release, void *ctx)
{
    int r = admit(c, 0);
    if (r < 0)
        return r;
    struct seda__out *o = seda__io_out_get(c->io);
    if (!o)
        return -ENOMEM;
    o->kind = SEDA__OUT_FILE;
    o->fd = fd;
    o->off = off;
    o->flen = len;
    o->release = release;
    o->ctx = ctx;
    append(c, o);
    seda__conn_flush_later(c);
    return 0;
}

static int append_marker(seda_conn_t *c, uint8_t kind, uint64_t tag)
{
    int r = admit(c, 0);
    if (r < 0)
        return r;
    struct seda__out *o = seda__io_out_get(c->io);
    if (!o)
        return -ENOMEM;
    o->kind = kind;
    o->tag = tag;
    append(c, o);
    seda__conn_flush_later(c);
    return 0;
}

int seda__conn_write_mark(seda_conn_t *c, uint64_t tag)
{
    return append_marker(c, SEDA__OUT_MARK, tag);
}

int seda__conn_write_shutdown(seda_conn_t *c)
{
    int r = append_marker(c, SEDA__OUT_SHUTDOWN, 0);
    if (r == 0)
        c->flags |= SEDA__C_WR_SHUT;
    return r;
}

/* ---- taking items off ------------------------------------------------------------ */

/* Takes the head item off the queue (before any callback, which may write). */
static struct seda__out *pop(seda_conn_t *c)
{
    struct seda__out *o = c->out_head;
    c->out_head = o->next;
    if (!c->out_head)
        c->out_tail = NULL;
    return o;
}

/* Frees an item taken off the queue; its callback gets status. */
static void finish_item(seda_conn_t *c, struct seda__out *o, int status)
{
    struct seda__io *io = c->io;
    switch (o->kind) {
    case SEDA__OUT_COPY: seda__io_buf_put(io, o->base); break;
    case SEDA__OUT_REF: o->release(o->ctx, o->base, status); break;
    case SEDA__OUT_FILE: o->release(o->ctx, NULL, status); break;
    default: break;
    }
    seda__io_out_put(io, o);
}

void seda__conn_drop_output(seda_conn_t *c, int status)
{
    size_t dropped = 0;
    while (c->out_head) {
        struct seda__out *o = pop(c);
        if (o->kind == SEDA__OUT_COPY || o->kind == SEDA__OUT_REF)
            dropped += o->len;
        finish_item(c, o, status);
    }
    set_queued(c, queued(c) - dropped);
}

/* n bytes of the COPY/REF items at the head were sent. The queue and its
 * count are brought up to date first, the release callbacks of the items
 * sent run last: a callback may call back into the connection (write,
 * close: the output still queued is then dropped, and CLOSED is its last
 * event). */
static void consume(seda_conn_t *c, size_t n)
{
    size_t total = n;
    struct seda__out *sent = NULL, **tail = &sent;
    while (n && c->out_head) {
        struct seda__out *o = c->out_head;
        size_t k = n < o->len ? n : o->len;
        o->ptr += k;
        o->len -= k;
        n -= k;
        if (o->len != 0)
            break;
        pop(c);
        o->next = NULL;
        *tail = o;
        tail = &o->next;
    }
    struct seda__io *io = c->io;
    seda__io_count(&io->st->bytes_out, total);
    seda__conn_touch(c);
    queued_less(c, total);
    while (sent) {
        struct seda__out *o = sent;
        sent = o->next;
        finish_item(c, o, 0);
    }
}

/* Items at the head that need no system call of their own. Returns false
 * if the connection closed. */
static bool head_specials(seda_conn_t *c)
{
    while (c->out_head && !(c->flags & SEDA__C_CLOSED)) {
        struct seda__out *o = c->out_head;
        if (o->kind == SEDA__OUT_MARK) {
            uint64_t tag = o->tag;
            finish_item(c, pop(c), 0);
            event(c, SEDA_IO_WRITE_DONE, tag);
        } else if (o->kind == SEDA__OUT_SHUTDOWN) {
            finish_item(c, pop(c), 0);
            shutdown(c->w.fd, SHUT_WR);
        } else if ((o->kind == SEDA__OUT_REF || o->kind == SEDA__OUT_COPY) && o->len == 0) {
            finish_item(c, pop(c), 0);
        } else if (o->kind == SEDA__OUT_FILE && o->flen == 0) {
            finish_item(c, pop(c), 0);
        } else {
            break;
        }
    }
    return !(c->flags & SEDA__C_CLOSED);
}

/* iovecs for the COPY/REF run at the head. Returns the count; *bytes the sum. */
static int gather(seda_conn_t *c, struct iovec *iov, int max, size_t *bytes)
{
    int n = 0;
    size_t sum = 0;
    for (struct seda__out *o = c->out_head;
         o && n < max && (o->kind == SEDA__OUT_COPY || o->kind == SEDA__OUT_REF); o = o->next) {
        iov[n].iov_base = (void *)o->ptr;
        iov[n].iov_len = o->len;
        sum += o->len;
        n++;
    }
    *bytes = sum;
    return n;
}

/* ---- waiting for writability ------------------------------------------------------ */

static void wait_writable(seda_conn_t *c)
{
    c->flags |= SEDA__C_OUT_WAIT;
    struct seda__io *io = c->io;
    if (io->uring) {
        /* Only sendfile meets EAGAIN here: watch readiness from now on. */
        if (!(c->flags & SEDA__C_WATCHED) && seda__loop_watch(c->loop, &c->w, SEDA_POLLER_OUT) == 0)
            c->flags |= SEDA__C_WATCHED;
    } else if (!io->edge) {
        seda__conn_update_interest(c);
    }
}

/* A sendfile to a reset peer raised SIGPIPE (blocked on this thread): take
 * it, so that it is not left pending. */
static void consume_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    struct timespec zero = { 0, 0 };
    while (sigtimedwait(&set, NULL, &zero) == SIGPIPE) {
    }
}

/* The file region at the head. Returns true when it is done (sent, or the
 * connection closed), false when the socket is full. */
static bool send_file(seda_conn_t *c)
{
    struct seda__out *o = c->out_head;
    while (o->flen > 0) {
        off_t off = (off_t)o->off;
        size_t want = o->flen < SENDFILE_CHUNK ? (size_t)o->flen : SENDFILE_CHUNK;
        ssize_t n = sendfile(c->w.fd, o->fd, &off, want);
        seda__io_count(&c->io->st->writes, 1);
        if (n > 0) {
            o->off += (uint64_t)n;
            o->flen -= (uint64_t)n;
            seda__io_count(&c->io->st->bytes_out, (uint64_t)n);
            seda__conn_touch(c);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_writable(c);
            return false;
        }
        if (n < 0 && errno == EINTR)
            continue;
        int err = n == 0 ? -EIO : -errno; /* 0: the file is shorter than promised */
        if (err == -EPIPE)
            consume_sigpipe();
        finish_item(c, pop(c), err);
        seda__conn_close_now(c, err);
        return true;
    }
    finish_item(c, pop(c), 0);
    return true;
}

/* ---- flushing: readiness backends ------------------------------------------------------ */

static void flush_sync(seda_conn_t *c)
{
    struct iovec iov[SEDA__IO_IOV];
    for (;;) {
        if (!head_specials(c))
            return;
        if (!c->out_head)
            break;
        if (c->out_head->kind == SEDA__OUT_FILE) {
            if (!send_file(c))
                return;
            continue;
        }
        size_t bytes;
        int n = gather(c, iov, SEDA__IO_IOV, &bytes);
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->w.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        seda__io_count(&c->io->st->writes, 1);
        if (w >= 0) {
            consume(c, (size_t)w);
            if (c->flags & SEDA__C_CLOSED) /* by a release callback */
                return;
            if ((size_t)w < bytes) { /* the socket buffer is full */
                wait_writable(c);
                return;
            }
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_writable(c);
            return;
        }
        if (errno == EINTR)
            continue;
        seda__conn_close_now(c, -errno); /* EPIPE, ECONNRESET: the peer is gone */
        return;
    }
    if (c->flags & SEDA__C_CLOSING)
        seda__conn_close_now(c, 0);
}

/* ---- flushing: io_uring ------------------------------------------------------------- */

static void flush_uring(seda_conn_t *c)
{
    struct seda__io *io = c->io;
    for (;;) {
        if (!head_specials(c))
            return;
        if (!c->out_head)
            break;
        if (c->out_head->kind == SEDA__OUT_FILE) {
            if (!send_file(c))
                return;
            continue;
        }
        if (!c->usend) {
            c->usend = malloc(sizeof *c->usend); /* once per connection */
            if (!c->usend) {
                seda__conn_close_now(c, -ENOMEM);
                return;
            }
        }
        size_t bytes;
        struct iovec *iov = c->usend->iov;
        int n = gather(c, iov, SEDA__IO_IOV, &bytes);
        int r;
        if (n == 1) {
            r = io->uring->send(c->loop->poller, c->w.fd, iov[0].iov_base,
                                (uint32_t)(bytes < UINT32_MAX ? bytes : UINT32_MAX), &c->w,
                                &c->send_op);
            if (bytes > UINT32_MAX)
                bytes = UINT32_MAX;
        } else {
            c->usend->msg = (struct msghdr){ .msg_iov = iov, .msg_iovlen = (size_t)n };
            r = io->uring->sendmsg(c->loop->poller, c->w.fd, &c->usend->msg, &c->w, &c->send_op);
        }
        seda__io_count(&io->st->writes, 1);
        if (r < 0) {
            c->send_op = 0;
            seda__conn_close_now(c, r);
            return;
        }
        c->send_len = bytes;
        return; /* one in flight; its completion goes on */
    }
    if (c->flags & SEDA__C_CLOSING)
        seda__conn_close_now(c, 0);
}

void seda__conn_send_complete(seda_conn_t *c, const struct seda__poller_completion *cp)
{
    c->send_op = 0;
    if (c->flags & SEDA__C_CLOSED) {
        seda__conn_maybe_finish(c); /* its buffers are free now */
        return;
    }
    if (cp->res < 0) {
        seda__conn_close_now(c, cp->res);
        return;
    }
    consume(c, (size_t)cp->res);
    /* A short send is resubmitted; what was queued meanwhile goes too. */
    seda__conn_flush(c);
}

/* ---- entry points --------------------------------------------------------------------- */

void seda__conn_flush(seda_conn_t *c)
{
    if (c->flags & (SEDA__C_CLOSED | SEDA__C_CONNECTING | SEDA__C_OUT_WAIT))
        return;
    if (c->io->uring) {
        if (!c->send_op)
            flush_uring(c);
    } else {
        flush_sync(c);
    }
}

static void flush_task(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    seda_conn_t *c = (seda_conn_t *)((char *)t - offsetof(seda_conn_t, flush_task));
    c->flags &= ~SEDA__C_FLUSH;
    seda__conn_flush(c);
}

void seda__conn_flush_later(seda_conn_t *c)
{
    if (c->flags & (SEDA__C_FLUSH | SEDA__C_CLOSED))
        return;
    c->flags |= SEDA__C_FLUSH;
    c->flush_task.run = flush_task;
    seda__loop_defer(c->loop, &c->flush_task);
}
