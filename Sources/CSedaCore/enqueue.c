/*
 * The enqueue paths into a stage (plain, per class, control, waiting, many),
 * and the stage graph they record: an enqueue from a handler notes the edge
 * "calling stage -> this stage".
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "runtime_internal.h"

/* The lowest class: where events without a class go. */
static inline seda_queue_t *default_queue(const seda_stage_t *s)
{
    return s->queues[s->classes - 1];
}

static inline uint32_t now_us(const seda_runtime_t *rt)
{
    return seda__us_stamp(seda__clock_now_fast(rt->clock));
}

static void note_edge(seda_stage_t *from, seda_stage_t *to)
{
    uint64_t id = to->id;
    for (int i = 0; i < SEDA__INLINE_EDGES; i++) {
        uint64_t e = atomic_load_explicit(&from->edges[i], memory_order_relaxed);
        if (e == id)
            return;
        if (e == 0) {
            if (atomic_compare_exchange_strong_explicit(
                    &from->edges[i], &e, id, memory_order_relaxed, memory_order_relaxed) ||
                e == id)
                return;
        }
    }
    /* More targets than the inline slots: rare, under a lock, no cap. */
    pthread_mutex_lock(&from->edge_lock);
    for (size_t i = 0; i < from->n_more; i++) {
        if (from->more_edges[i] == id) {
            pthread_mutex_unlock(&from->edge_lock);
            return;
        }
    }
    if (from->n_more == from->cap_more) {
        size_t cap = from->cap_more ? from->cap_more * 2 : 8;
        uint64_t *m = realloc(from->more_edges, cap * sizeof *m);
        if (!m) { /* the graph misses an edge; the event itself was delivered */
            pthread_mutex_unlock(&from->edge_lock);
            return;
        }
        from->more_edges = m;
        from->cap_more = cap;
    }
    from->more_edges[from->n_more++] = id;
    pthread_mutex_unlock(&from->edge_lock);
}

static inline int admit(seda_stage_t *s)
{
    /* While the runtime stops, only its own threads (handlers draining the
     * graph) may enqueue. */
    if (SEDA__UNLIKELY(atomic_load_explicit(&s->rt->state, memory_order_relaxed) !=
                       SEDA__RT_RUNNING) &&
        !seda__worker_of(s->rt))
        return -EPIPE;
    return 0;
}

static inline int after_enqueue(seda_stage_t *s, int r)
{
    /* The calling handler's stage, if it belongs to s's runtime. A handler
     * of another runtime is an outside producer here: stage ids are per
     * runtime (an edge would name the wrong stage) and parking upstream of
     * s would take the other runtime's park lock for s's lists. */
    struct seda__worker *w = seda__worker_of(s->rt);
    seda_stage_t *from = w ? w->stage : NULL;
    if (SEDA__UNLIKELY(r < 0)) {
        if (r == -EAGAIN) {
            seda__note_full(s);
            if (from && from != s && from->pause_when_clogged && !w->blocked_by) {
                seda_stage_retain(s);
                w->blocked_by = s;
            }
        }
        if (r == -EAGAIN || r == -EPIPE)
            atomic_fetch_add_explicit(r == -EAGAIN ? &s->rejected_full : &s->rejected_closed, 1,
                                      memory_order_relaxed);
        return r;
    }
    if (from && from != s)
        note_edge(from, s);
    if (s->manager == SEDA_THREADS_SHARED)
        seda__schedule(s);
    return r;
}

/*
 * The stamp of an event entering s's queue now: the time it entered, read
 * from s's runtime clock (the fast clock: ~17 ns with rdtsc here). One
 * exception keeps the shared threads' hop free of a clock read: a handler on
 * the shared threads enqueueing into a FIFO stage of its own runtime stamps
 * the start of its batch. Handlers there are short by contract (a long one is
 * reported, see batch.c), so that stamp is early by at most the time the
 * handler ran before this enqueue; only the queue-delay histogram reads it.
 * Where a decision rests on the stamp (a CoDel stage), or where the sender
 * may block for long (a dedicated pool, an outside thread), the clock is read.
 */
static inline uint32_t stamp_now(const seda_stage_t *s)
{
    struct seda__worker *w = seda__worker_tls;
    if (w && w->stage && w->cpu_thread && w->rt == s->rt && s->discipline != SEDA_DISCIPLINE_CODEL)
        return w->batch_us;
    return now_us(s->rt);
}

int seda_stage_enqueue(seda_stage_t *s, void *event)
{
    int r = admit(s);
    if (r == 0)
        r = seda_queue_enqueue_at(default_queue(s), event, stamp_now(s));
    return after_enqueue(s, r);
}

int seda_stage_enqueue_class(seda_stage_t *s, void *event, uint32_t cls)
{
    if (cls >= s->classes)
        return -EINVAL;
    int r = admit(s);
    if (r == 0)
        r = seda_queue_enqueue_at(s->queues[cls], event, stamp_now(s));
    return after_enqueue(s, r);
}

int seda_stage_enqueue_control(seda_stage_t *s, void *event)
{
    int r = admit(s);
    if (r == 0) /* the first class */
        r = seda_queue_enqueue_at(s->queues[0], event, stamp_now(s) | SEDA__STAMP_CONTROL);
    return after_enqueue(s, r);
}

int seda_stage_enqueue_wait(seda_stage_t *s, void *event, int64_t timeout_ns)
{
    return seda_stage_enqueue_wait_class(s, event, s->classes - 1, timeout_ns);
}

int seda_stage_enqueue_wait_class(seda_stage_t *s, void *event, uint32_t cls, int64_t timeout_ns)
{
    if (cls >= s->classes)
        return -EINVAL;
    seda_queue_t *q = s->queues[cls];
    int r = admit(s);
    if (r < 0)
        return after_enqueue(s, r);
    /* On the shared threads (of any runtime) a wait can deadlock the graph:
     * the stage that would make room may need this very thread (always, in
     * a cycle). So there it enqueues if there is room, and refuses only
     * the wait: a full queue is -EDEADLK, counted (and reported clogged)
     * like any full rejection. */
    struct seda__worker *w = seda__worker_tls;
    if (w && w->cpu_thread) {
        r = seda_queue_enqueue_at(q, event, stamp_now(s));
        if (r == -EAGAIN) {
            after_enqueue(s, r);
            return -EDEADLK;
        }
        return after_enqueue(s, r);
    }
    r = seda_queue_enqueue_wait(q, event, stamp_now(s), timeout_ns);
    if (r == -ETIMEDOUT) {
        atomic_fetch_add_explicit(&s->rejected_full, 1, memory_order_relaxed);
        return r;
    }
    return after_enqueue(s, r);
}

int seda_stage_enqueue_many(seda_stage_t *s, void *const *events, size_t count)
{
    return seda_stage_enqueue_many_class(s, events, count, s->classes - 1);
}

int seda_stage_enqueue_many_class(seda_stage_t *s, void *const *events, size_t count, uint32_t cls)
{
    if (cls >= s->classes)
        return -EINVAL;
    if (count == 0)
        return 0;
    int r = admit(s);
    if (r == 0)
        r = seda_queue_enqueue_many_at(s->queues[cls], events, count, stamp_now(s));
    return after_enqueue(s, r);
}

/* The stage with that id on a runtime's list, or NULL. rt->lock held. */
static seda_stage_t *find_id(seda_stage_t *list, uint64_t id)
{
    for (seda_stage_t *t = list; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

size_t seda_stage_edges(const seda_stage_t *cs, seda_stage_t **out, size_t max)
{
    seda_stage_t *s = (seda_stage_t *)cs;
    seda_runtime_t *rt = s->rt;
    size_t n = 0;
    /* Resolve ids against the live stages and those shutdown retired;
     * stages seda_stage_destroy took down drop out. Lock order: runtime,
     * then stage. */
    pthread_mutex_lock(&rt->lock);
    pthread_mutex_lock(&s->edge_lock);
    size_t total = SEDA__INLINE_EDGES + s->n_more;
    for (size_t i = 0; i < total; i++) {
        uint64_t id = i < SEDA__INLINE_EDGES
                          ? atomic_load_explicit(&s->edges[i], memory_order_relaxed)
                          : s->more_edges[i - SEDA__INLINE_EDGES];
        if (id == 0)
            continue;
        seda_stage_t *t = find_id(rt->stages, id);
        if (!t)
            t = find_id(rt->retired, id);
        if (t) {
            if (n < max) {
                seda_stage_retain(t);
                out[n] = t;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&s->edge_lock);
    pthread_mutex_unlock(&rt->lock);
    return n;
}
