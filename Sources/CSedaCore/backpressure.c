/*
 * Backpressure: a stage's clogged/drained state (reported to its watcher),
 * and, for stages created with pause_when_clogged, parking them upstream of a
 * clogged stage instead of scheduling them (Sandstorm's "refuse to schedule
 * upstream of a clogged stage").
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime_internal.h"

/* Removes x from the list of the stage it is parked on. park_lock held. */
static void unlink_parked(seda_stage_t *x)
{
    seda_stage_t *down = x->parked_on;
    for (size_t i = 0; i < down->n_paused; i++) {
        if (down->paused[i] == x) {
            down->paused[i] = down->paused[--down->n_paused];
            break;
        }
    }
    x->parked_on = NULL;
}

void seda__unpark_upstream(seda_stage_t *down)
{
    seda_runtime_t *rt = down->rt;
    pthread_mutex_lock(&rt->park_lock);
    seda_stage_t **list = down->paused;
    size_t n = down->n_paused;
    down->paused = NULL;
    down->n_paused = down->cap_paused = 0;
    for (size_t i = 0; i < n; i++)
        list[i]->parked_on = NULL;
    pthread_mutex_unlock(&rt->park_lock);
    for (size_t i = 0; i < n; i++)
        seda__push_stage(list[i], false); /* the parked instance and its reference */
    free(list);
}

void seda__unpark_self(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    bool found = false;
    pthread_mutex_lock(&rt->park_lock);
    if (s->parked_on) {
        unlink_parked(s);
        found = true;
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (found)
        seda__push_stage(s, false);
}

/*
 * Parks this turn's instance of `up` on `down` instead of rescheduling it,
 * if `down` is still clogged. Returns whether it parked.
 *
 * Cycles. If `down` waits (directly or through a chain of parked stages)
 * for `up`, parking would leave every stage of the cycle waiting for
 * another to drain, for ever; and merely not parking is no better: `down`
 * would still wait for `up`, which cannot drain into `down`. So the stages
 * of the chain are rescheduled instead, and the cycle runs: its handlers
 * meet full queues and apply their own overload policy (keep, shed).
 */
bool seda__park_upstream(seda_stage_t *up, seda_stage_t *down)
{
    seda_runtime_t *rt = up->rt;
    if (down == up)
        return false;
    enum { CHAIN_MAX = 64 };
    seda_stage_t *chain[CHAIN_MAX];
    size_t n_chain = 0;
    bool parked = false, cycle = false;
    pthread_mutex_lock(&rt->park_lock);
    for (seda_stage_t *x = down; x && n_chain < CHAIN_MAX; x = x->parked_on) {
        if (x == up) {
            cycle = true;
            break;
        }
        if (x->parked_on)
            chain[n_chain++] = x;
    }
    if (cycle) {
        for (size_t i = 0; i < n_chain; i++)
            unlink_parked(chain[i]);
    } else if (atomic_load(&down->clogged) && !atomic_load(&down->destroyed) &&
               atomic_load(&rt->state) < SEDA__RT_STOPPING) {
        if (down->n_paused == down->cap_paused) {
            size_t cap = down->cap_paused ? 2 * down->cap_paused : 4;
            seda_stage_t **m = realloc(down->paused, cap * sizeof *m);
            if (m) {
                down->paused = m;
                down->cap_paused = cap;
            }
        }
        if (down->n_paused < down->cap_paused) {
            down->paused[down->n_paused++] = up;
            up->parked_on = down;
            parked = true;
            atomic_fetch_add_explicit(&up->pauses, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&rt->park_lock);
    if (cycle)
        for (size_t i = 0; i < n_chain; i++)
            seda__push_stage(chain[i], false); /* their parked instances run again */
    return parked;
}

void seda__set_clogged(seda_stage_t *s, bool clogged)
{
    bool was = !clogged;
    /* One thread wins each transition and reports it. */
    if (!atomic_compare_exchange_strong(&s->clogged, &was, clogged))
        return;
    if (s->on_state)
        s->on_state(s->state_ctx, s, clogged ? SEDA_STAGE_CLOGGED : SEDA_STAGE_DRAINED);
    if (!clogged)
        seda__unpark_upstream(s); /* after the flag: a parker re-checks it under the lock */
}

void seda__check_drained(seda_stage_t *s)
{
    if (SEDA__UNLIKELY(atomic_load_explicit(&s->clogged, memory_order_relaxed)) &&
        seda__stage_size(s) <= seda_queue_capacity(s->queues[0]) / 4)
        seda__set_clogged(s, false);
}

int seda_stage_watch(seda_stage_t *s, seda_stage_state_fn fn, void *ctx)
{
    /* Set once, before traffic: a plain pair of stores published by the
     * caller's later enqueues. */
    if (s->on_state)
        return -EBUSY;
    s->state_ctx = ctx;
    s->on_state = fn;
    return 0;
}

int seda_stage_is_clogged(const seda_stage_t *s)
{
    return atomic_load_explicit(&((seda_stage_t *)s)->clogged, memory_order_relaxed);
}
