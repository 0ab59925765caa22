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
    bool parked = false, cycle = false;
    /* The parked stages of the chain, linked through chain_next. */
    seda_stage_t *chain = NULL;
    pthread_mutex_lock(&rt->park_lock);
    /* The whole chain, however long: parked_on links never form a cycle (a
     * park that would close one is refused right here), so the walk ends. */
    for (seda_stage_t *x = down; x; x = x->parked_on) {
        if (x == up) {
            cycle = true;
            break;
        }
    }
    if (cycle) {
        for (seda_stage_t *x = down, *next; x != up; x = next) {
            next = x->parked_on;
            unlink_parked(x);
            x->chain_next = chain;
            chain = x;
        }
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
    while (chain) { /* their parked instances run again */
        seda_stage_t *x = chain;
        chain = x->chain_next;
        seda__push_stage(x, false);
    }
    return parked;
}

static void set_clogged(seda_stage_t *s, bool clogged)
{
    bool was = !clogged;
    /* One thread wins each transition and reports it. */
    if (!atomic_compare_exchange_strong(&s->clogged, &was, clogged))
        return;
    /* Acquire: pairs with the release in seda_stage_watch (state_ctx). */
    seda_stage_state_fn fn = atomic_load_explicit(&s->on_state, memory_order_acquire);
    if (fn)
        fn(s->state_ctx, s, clogged ? SEDA_STAGE_CLOGGED : SEDA_STAGE_DRAINED);
    if (!clogged)
        seda__unpark_upstream(s); /* after the flag: a parker re-checks it under the lock */
}

void seda__check_drained(seda_stage_t *s)
{
    /* seq_cst load after the dequeue's seq_cst head CAS: pairs with
     * seda__note_full (see there). A plain load on x86. */
    if (SEDA__UNLIKELY(atomic_load_explicit(&s->clogged, memory_order_seq_cst)) &&
        seda__stage_size(s) <= seda_queue_capacity(s->queues[0]) / 4)
        set_clogged(s, false);
}

void seda__note_full(seda_stage_t *s)
{
    if (!atomic_load_explicit(&s->clogged, memory_order_relaxed))
        set_clogged(s, true);
    /* The stage's threads may have drained the queue completely between our
     * failed enqueue and the flag: their drained check read the flag before
     * we set it, and with the queue empty they will not run (nor check)
     * again. So check here too. Store-load on both sides: our seq_cst CAS
     * of the flag, then our seq_cst read of the size; their seq_cst head CAS
     * (dequeue), then their seq_cst read of the flag. Either we see the
     * drained queue, or they see the flag. */
    seda__check_drained(s);
}

int seda_stage_watch(seda_stage_t *s, seda_stage_state_fn fn, void *ctx)
{
    if (!fn)
        return -EINVAL;
    /* Installs are rare: one lock makes the check and the two stores one
     * step, so a losing install never touches state_ctx. */
    pthread_mutex_lock(&s->rt->park_lock);
    int r = -EBUSY;
    if (!atomic_load_explicit(&s->on_state, memory_order_relaxed)) {
        s->state_ctx = ctx;
        /* Release: pairs with the acquire in set_clogged. */
        atomic_store_explicit(&s->on_state, fn, memory_order_release);
        r = 0;
    }
    pthread_mutex_unlock(&s->rt->park_lock);
    return r;
}
