/*
 * seda_conn_write_multi (include/seda/socket.h): one buffer queued on many
 * connections at once (a flood). The connections owned by the calling loop
 * are written at once; those of each other loop go to that loop as ONE
 * posted task carrying all of them, so that a flood to N connections spread
 * over L loops costs L allocations, L inbox pushes and at most L wakes rather
 * than N of each (seda_conn_write from another thread posts one task per
 * write).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "socket_internal.h"

/* Loops one call posts to with a task of their own; connections of any
 * further loop go one by one through seda_conn_write. */
#define MAX_GROUPS 32

/* The writes for one loop: run there, in the order of the caller's array. */
struct multi {
    struct seda__task task;
    const void *buf;
    size_t len;
    seda_write_release_fn release;
    void *ctx;
    size_t n;
    seda_conn_t *conns[]; /* each with a reference of the task's */
};

static void multi_run(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    struct multi *m = (struct multi *)t;
    for (size_t i = 0; i < m->n; i++) {
        seda_conn_t *c = m->conns[i];
        int r = seda__conn_write_ref(c, m->buf, m->len, m->release, m->ctx);
        if (r < 0)
            m->release(m->ctx, m->buf, r); /* accepted at the call: the callback reports it */
        seda_conn_release(c);
    }
    free(m);
}

struct group {
    struct seda__loop *loop;
    size_t count;
    struct multi *m;
};

static int group_of(struct group *g, int groups, const struct seda__loop *l)
{
    for (int k = 0; k < groups; k++)
        if (g[k].loop == l)
            return k;
    return -1;
}

int seda_conn_write_multi(seda_conn_t *const *conns, size_t n, const void *buf, size_t len,
                          seda_write_release_fn release, void *ctx, int *results)
{
    if ((!conns && n) || (!buf && len) || !release)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!conns[i])
            return -EINVAL;
    struct seda__loop *self = seda__loop_current();
    struct group g[MAX_GROUPS];
    int groups = 0;
    size_t accepted = 0;

    /* Pass 1: the caller's own connections now; count the others by loop. */
    for (size_t i = 0; i < n; i++) {
        seda_conn_t *c = conns[i];
        int r = 0;
        if (c->loop == self) {
            r = seda__conn_write_ref(c, buf, len, release, ctx);
        } else {
            int k = group_of(g, groups, c->loop);
            if (k < 0 && groups < MAX_GROUPS) {
                k = groups++;
                g[k] = (struct group){ .loop = c->loop };
            }
            if (k >= 0)
                g[k].count++;
            else
                r = seda_conn_write(c, buf, len, release, ctx); /* past MAX_GROUPS loops */
        }
        if (results)
            results[i] = r;
        accepted += r == 0;
    }
    if (groups == 0)
        return (int)accepted;

    for (int k = 0; k < groups; k++) {
        struct multi *m = malloc(sizeof *m + g[k].count * sizeof m->conns[0]);
        g[k].m = m;
        if (m) {
            m->task.run = multi_run;
            m->buf = buf;
            m->len = len;
            m->release = release;
            m->ctx = ctx;
            m->n = 0;
        }
    }

    /* Pass 2: fill each loop's task, in the caller's order. */
    for (size_t i = 0; i < n; i++) {
        seda_conn_t *c = conns[i];
        if (c->loop == self)
            continue;
        int k = group_of(g, groups, c->loop);
        if (k < 0)
            continue; /* written one by one in pass 1 */
        if (!g[k].m) {
            if (results)
                results[i] = -ENOMEM;
            accepted--;
            continue;
        }
        seda_conn_retain(c);
        g[k].m->conns[g[k].m->n++] = c;
    }

    for (int k = 0; k < groups; k++) {
        struct multi *m = g[k].m;
        if (!m || seda__loop_post(g[k].loop, &m->task))
            continue;
        /* That loop has exited: none of its writes happened. */
        for (size_t j = 0; j < m->n; j++) {
            seda_conn_t *c = m->conns[j];
            if (results) {
                for (size_t i = 0; i < n; i++) {
                    if (conns[i] == c) {
                        results[i] = -EPIPE;
                        break;
                    }
                }
            }
            accepted--;
            seda_conn_release(c);
        }
        free(m);
    }
    return (int)accepted;
}
