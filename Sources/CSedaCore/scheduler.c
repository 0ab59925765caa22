/*
 * The shared thread manager: one thread per CPU serving every non-blocking
 * stage. A stage with events is put on the run queue once (see "Scheduling"
 * in runtime_internal.h); a thread takes it, runs a turn of a few batches,
 * and puts it back if events remain. A stage a handler feeds runs next on
 * the same thread (the run-next slot). A thread with nothing to run spins
 * briefly, then parks on the run queue's notifier.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime_internal.h"

_Thread_local struct seda__worker *seda__worker_tls;

/* Events a shared-pool thread handles in one turn of a stage before it moves
 * on: several batches, so that a busy stage costs one scheduling round trip
 * per turn rather than per batch, yet others still get their turn. */
#define TURN_EVENTS_MIN 64
#define TURN_BATCHES_MAX 16
/* Consecutive "run next" turns before the slot goes to the run queue, so a
 * chain of stages cannot keep one thread to itself. */
#define NEXT_RUNS_MAX 8
/* Empty polls of the run queue before a shared thread parks (~20-50 us of
 * PAUSEs): a wake-up costs more than that. */
#define IDLE_SPINS 512

void seda__push_stage(seda_stage_t *s, bool take_ref)
{
    if (take_ref)
        seda_stage_retain(s);
    int r;
    /* Capacity is reserved at stage creation, but a consumer preempted
     * between claiming a slot and freeing it makes the ring look full for a
     * moment: retry. Only a closed run queue (shutdown) gives up. */
    while ((r = seda_queue_enqueue(s->rt->run_queue, s)) == -EAGAIN)
        sched_yield();
    if (r != 0) {
        /* Nobody will run this instance. */
        atomic_fetch_sub_explicit(&s->active, 1, memory_order_seq_cst);
        seda_stage_release(s);
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
    if (w && w->cpu_thread) {
        /* Newest in the slot; the one it displaces goes to the run queue. */
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
static void run_turn(struct seda__worker *w, seda_stage_t *s)
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
                if (atomic_compare_exchange_weak_explicit(&s->active, &a, a + 1,
                                                          memory_order_seq_cst,
                                                          memory_order_relaxed)) {
                    seda__push_stage(s, true);
                    break;
                }
            }
        }
        /* The queue's depth is sampled once per turn, at its first batch. */
        seda__run_batch(w, s, buf, stamps, (size_t)k, batches == 0 && (uint32_t)k == batch_max);
        done += (uint32_t)k;
        if (done >= budget || batches + 1 == TURN_BATCHES_MAX || w->blocked_by) {
            more = true;
            break;
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

/* The loop of a shared thread: the run-next slot, then the run queue; spin a
 * little, then park on the run queue's notifier when there is nothing to run. */
static void *cpu_thread(void *p)
{
    struct seda__worker *w = p;
    seda_runtime_t *rt = w->rt;
    seda__worker_tls = w;
    w->buf = malloc(SEDA__BATCH_LIMIT * sizeof(void *));
    w->stamps = malloc(SEDA__BATCH_LIMIT * sizeof(uint32_t));
    if (!w->buf || !w->stamps)
        abort(); /* 12 KB at thread start; nothing sensible to do without it */
    unsigned next_runs = 0;
    for (;;) {
        if (w->next) {
            seda_stage_t *s = w->next;
            w->next = NULL;
            if (++next_runs <= NEXT_RUNS_MAX) {
                run_turn(w, s);
                continue;
            }
            seda__push_stage(s, false); /* enough: to the back of the line */
        }
        next_runs = 0;
        w->last_end = 0; /* between turns: the next batch reads the clock */
        void *item;
        int r = -EAGAIN;
        for (unsigned spin = 0; spin < IDLE_SPINS && r == -EAGAIN; spin++) {
            r = seda_queue_dequeue(rt->run_queue, &item);
            if (r != -EAGAIN)
                break;
            /* Mostly PAUSE; now and then let a thread waiting for this CPU
             * (a producer, on an oversubscribed machine) run instead. */
            if (spin % 64 == 63)
                sched_yield();
            else
                seda__cpu_relax();
        }
        if (r == -EAGAIN)
            r = seda_queue_dequeue_wait(rt->run_queue, &item, NULL, 1, -1);
        if (r == -EPIPE)
            break;
        if (r >= 0)
            run_turn(w, item);
    }
    free(w->buf);
    free(w->stamps);
    w->buf = NULL;
    w->stamps = NULL;
    return NULL;
}

int seda__scheduler_start(seda_runtime_t *rt, uint32_t threads)
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
        int e = pthread_create(&rt->cpu[i], NULL, cpu_thread, w);
        if (e != 0)
            return -e;
        rt->cpu_threads = i + 1;
        char name[24];
        snprintf(name, sizeof name, "seda-cpu%u", i);
        seda__name_thread(rt->cpu[i], name);
        if (rt->pin)
            seda__pin_thread(rt->cpu[i], (int)i);
    }
    return 0;
}

void seda__scheduler_stop(seda_runtime_t *rt)
{
    seda_queue_close(rt->run_queue);
    for (uint32_t i = 0; i < rt->cpu_threads; i++)
        pthread_join(rt->cpu[i], NULL);
}

void seda__scheduler_free(seda_runtime_t *rt)
{
    for (uint32_t i = 0; i < rt->workers_len; i++)
        free(rt->workers[i]);
    free(rt->workers);
    free(rt->cpu);
    rt->workers = NULL;
    rt->workers_len = 0;
    rt->cpu = NULL;
}
