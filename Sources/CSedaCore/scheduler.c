/*
 * The shared thread manager: one thread per CPU serving every non-blocking
 * stage. A stage with events is put on the run queue once (see "Scheduling"
 * in runtime_internal.h); a thread takes it, runs a turn of a few batches,
 * and puts it back if events remain. A stage a handler feeds runs next on
 * the same thread (the run-next slot). A stage bound to one thread is
 * scheduled on that thread's own list instead of the run queue. Each thread
 * runs a worker loop (loop.c), which also polls its descriptors and, with
 * nothing to run, sleeps in its poller.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "loop.h"
#include "runtime_internal.h"

_Thread_local struct seda__worker *seda__worker_tls;

/* Events a shared-pool thread handles in one turn of a stage before it moves
 * on: several batches, so that a busy stage costs one scheduling round trip
 * per turn rather than per batch, yet others still get their turn. */
#define TURN_EVENTS_MIN 64
#define TURN_BATCHES_MAX 16

void seda__push_stage(seda_stage_t *s, bool take_ref)
{
    if (take_ref)
        seda_stage_retain(s);
    /* A bound stage goes to its loop's own list, any other to the run queue.
     * Read what the wake-up needs now: once the enqueue succeeds, the
     * instance's reference belongs to whichever thread takes it, which may
     * run the turn and drop the last reference (a destroy in progress)
     * before this thread goes on. The loop and the runtime outlive that: a
     * runtime thread's own, or kept by the caller's stage reference. */
    struct seda__loop *home = s->home;
    seda_runtime_t *rt = s->rt;
    seda_queue_t *q = home ? home->local : rt->run_queue;
    int r;
    /* Capacity is reserved at stage creation, but a consumer preempted
     * between claiming a slot and freeing it makes the ring look full for a
     * moment: retry. Only a closed run queue (shutdown) gives up. */
    while ((r = seda_queue_enqueue(q, s)) == -EAGAIN)
        sched_yield();
    if (r != 0) {
        /* Nobody will run this instance. */
        atomic_fetch_sub_explicit(&s->active, 1, memory_order_seq_cst);
        seda_stage_release(s);
        return;
    }
    /* The enqueue was the seq_cst publication; now wake a sleeping loop.
     * s itself may be gone by now. */
    if (home) {
        if (home != seda__loop_current())
            seda__loop_wake(home);
    } else {
        seda__loop_wake_any(rt);
    }
}

void seda__schedule(seda_stage_t *s)
{
    /* seq_cst load after the enqueue's seq_cst RMW; see runtime_internal.h. */
    if (atomic_load_explicit(&s->active, memory_order_seq_cst) != 0)
        return;
    uint32_t idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->active, &idle, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    struct seda__worker *w = seda__worker_of(s->rt);
    if (w && w->cpu_thread && (!s->home || s->home == w->loop)) {
        /* Newest in the slot; the one it displaces goes to its run queue. */
        seda_stage_retain(s);
        seda_stage_t *old = w->next;
        w->next = s;
        if (old)
            seda__push_stage(old, false);
        return;
    }
    seda__push_stage(s, true);
}

/* One turn of a shared-pool thread on stage s: a few batches at most. */
void seda__run_turn(struct seda__worker *w, seda_stage_t *s)
{
    void **buf = w->buf;
    uint32_t *stamps = w->stamps;
    uint32_t batch_max = atomic_load_explicit(&s->batch_max, memory_order_relaxed);
    uint32_t budget = batch_max * 4 > TURN_EVENTS_MIN ? batch_max * 4 : TURN_EVENTS_MIN;
    uint32_t done = 0;
    bool more = false; /* stopped on the budget: events may remain */
    for (int batches = 0; batches < TURN_BATCHES_MAX; batches++) {
        int k = seda__stage_dequeue(s, buf, stamps, batch_max);
        if (k <= 0)
            break;
        if (batches == 0 && s->concurrency > 1 && (uint32_t)k == batch_max &&
            seda__stage_size(s) > 0) {
            /* More waiting: let another thread take the next batch now. */
            uint32_t a = atomic_load_explicit(&s->active, memory_order_relaxed);
            while (a < s->concurrency) {
                if (atomic_compare_exchange_weak_explicit(
                        &s->active, &a, a + 1, memory_order_seq_cst, memory_order_relaxed)) {
                    seda__push_stage(s, true);
                    break;
                }
            }
        }
        /* The queue's depth is sampled once per turn, at its first batch. */
        seda__run_batch(w, s, (size_t)k, batches == 0 && (uint32_t)k == batch_max);
        done += (uint32_t)k;
        if (done >= budget || batches + 1 == TURN_BATCHES_MAX || w->blocked_by) {
            more = true;
            break;
        }
        /* The turn goes on, and the stage this handler fed waits in the
         * run-next slot until it ends (up to TURN_BATCHES_MAX batches). If
         * another shared thread has nothing to do, let it run that stage
         * now: its events would otherwise wait while a CPU idles. When the
         * turn is about to end anyway (nothing left), keep the slot: the
         * stage runs next here, with the events still in cache and no
         * wake-up. A stage bound to this thread stays: only it may run it. */
        if (w->next && !w->next->home &&
            atomic_load_explicit(&w->rt->idle_threads, memory_order_relaxed) > 0 &&
            seda__stage_size(s) > 0) {
            seda__push_stage(w->next, false);
            w->next = NULL;
        }
    }
    if (w->blocked_by) {
        /* The handler found a downstream stage full: wait for it to drain
         * instead of taking the next turn (refuse to schedule upstream of a
         * clogged stage). The instance moves to that stage's list. */
        seda_stage_t *down = w->blocked_by;
        w->blocked_by = NULL;
        bool parked = seda__park_upstream(s, down);
        seda_stage_release(down);
        if (parked)
            return;
    }
    if (more) {
        /* Round robin: back of the run queue, keeping this reference. If the
         * queue happens to be empty, that turn finds out and idles. */
        seda__push_stage(s, false);
        return;
    }
    /* Empty. seq_cst RMW, then the seq_cst size read; see runtime_internal.h. */
    if (atomic_fetch_sub_explicit(&s->active, 1, memory_order_seq_cst) == 1 &&
        seda__stage_size(s) > 0) {
        uint32_t idle = 0;
        if (atomic_compare_exchange_strong_explicit(&s->active, &idle, 1, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            seda__push_stage(s, false);
            return;
        }
    }
    seda_stage_release(s);
}

/* Creation of a shared thread's loop happens on the thread itself (an
 * io_uring ring with SINGLE_ISSUER belongs to the thread that creates it);
 * the creating thread waits for the outcome. */
struct start_sync {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
    const seda_runtime_options_t *opts;
};

static void started(struct start_sync *st, int err)
{
    pthread_mutex_lock(&st->lock);
    st->done = 1;
    st->err = err;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

/* A shared thread: its worker loop (loop.c) until the runtime stops. */
static void *cpu_thread(void *p)
{
    struct seda__worker *w = p;
    struct start_sync *st = w->start;
    seda__worker_tls = w;
    int r = seda__loop_create(w, st->opts, &w->loop);
    w->start = NULL;
    started(st, r); /* st is gone from here on */
    if (r == 0)
        seda__loop_run(w->loop);
    return NULL;
}

int seda__scheduler_start(seda_runtime_t *rt, uint32_t threads, const seda_runtime_options_t *opts)
{
    rt->cpu = calloc(threads, sizeof(pthread_t));
    rt->workers = calloc(threads, sizeof *rt->workers);
    if (!rt->cpu || !rt->workers)
        return -ENOMEM;
    rt->workers_len = threads;
    for (uint32_t i = 0; i < threads; i++) {
        struct seda__worker *w = seda__alloc_aligned(sizeof *w);
        if (!w)
            return -ENOMEM;
        w->rt = rt;
        w->index = i;
        w->cpu_thread = true;
        rt->workers[i] = w;
        int r = seda__worker_alloc(w);
        if (r < 0)
            return r;
        struct start_sync st = { .opts = opts };
        pthread_mutex_init(&st.lock, NULL);
        pthread_cond_init(&st.cond, NULL);
        w->start = &st;
        r = seda__thread_start(&rt->cpu[i], cpu_thread, w);
        if (r == 0) {
            pthread_mutex_lock(&st.lock);
            while (!st.done)
                pthread_cond_wait(&st.cond, &st.lock);
            pthread_mutex_unlock(&st.lock);
        }
        pthread_mutex_destroy(&st.lock);
        pthread_cond_destroy(&st.cond);
        if (r < 0)
            return r;
        if (st.err < 0) {
            pthread_join(rt->cpu[i], NULL);
            return st.err;
        }
        rt->cpu_threads = i + 1;
        char name[24];
        snprintf(name, sizeof name, "seda-cpu%u", i);
        seda__name_thread(rt->cpu[i], name);
        if (rt->pin)
            seda__pin_thread(rt, rt->cpu[i], (int)i);
    }
    return 0;
}

void seda__scheduler_stop(seda_runtime_t *rt)
{
    seda_queue_close(rt->run_queue);
    /* Sleeping loops learn of it when woken (work_available sees the close). */
    for (uint32_t i = 0; i < rt->cpu_threads; i++)
        seda__loop_wake(rt->workers[i]->loop);
    for (uint32_t i = 0; i < rt->cpu_threads; i++)
        pthread_join(rt->cpu[i], NULL);
}

void seda__scheduler_free(seda_runtime_t *rt)
{
    for (uint32_t i = 0; i < rt->workers_len; i++) {
        if (rt->workers[i]) {
            seda__loop_destroy(rt->workers[i]->loop);
            seda__worker_free(rt->workers[i]);
        }
        free(rt->workers[i]);
    }
    free(rt->workers);
    free(rt->cpu);
    rt->workers = NULL;
    rt->workers_len = 0;
    rt->cpu = NULL;
}
