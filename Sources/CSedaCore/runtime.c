/*
 * The runtime object (include/seda/runtime.h): creation, its reference
 * count, and the registry of its stages (by name, in creation order). The
 * runtime's other jobs live in the files listed in runtime_internal.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "runtime_internal.h"

void seda__runtime_release(seda_runtime_t *rt)
{
    if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    seda__scheduler_free(rt);
    seda_queue_destroy(rt->run_queue, NULL, NULL);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->park_lock);
    free(rt);
}

int seda_runtime_create(seda_runtime_t **out, const seda_runtime_options_t *opts)
{
    seda_runtime_options_t o = { 0 };
    if (opts)
        o = *opts;
    if (!out)
        return -EINVAL;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        CPU_ZERO(&allowed);
        CPU_SET(0, &allowed);
    }
    uint32_t threads = o.cpu_threads ? o.cpu_threads : (uint32_t)CPU_COUNT(&allowed);
    seda_runtime_t *rt = seda__alloc_aligned(sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->allowed_cpus = allowed;
    rt->clock = o.clock ? o.clock : seda_clock_monotonic();
    rt->run_queue_capacity = o.run_queue_capacity ? o.run_queue_capacity : 65536;
    rt->pin = o.pin_threads != 0;
    rt->log = o.log;
    rt->log_ctx = o.log_ctx;
    atomic_init(&rt->refs, 1);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->park_lock, NULL);
    int r = seda_queue_create(&rt->run_queue, rt->run_queue_capacity, NULL);
    if (r < 0)
        goto fail;
    rt->run_queue_capacity = (uint32_t)seda_queue_capacity(rt->run_queue);
    r = seda__scheduler_start(rt, threads, &o);
    if (r < 0)
        goto fail_threads;
    *out = rt;
    return 0;

fail_threads:
    seda__scheduler_stop(rt);
fail:
    seda__scheduler_free(rt);
    seda_queue_destroy(rt->run_queue, NULL, NULL);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->park_lock);
    free(rt);
    return r;
}

const seda_clock_t *seda_runtime_clock(const seda_runtime_t *rt)
{
    return rt->clock;
}

uint32_t seda_runtime_cpu_threads(const seda_runtime_t *rt)
{
    return rt->cpu_threads;
}

int seda_runtime_thread_index(const seda_runtime_t *rt)
{
    struct seda__loop *l = seda__loop_current();
    return l && l->rt == rt ? (int)l->index : -1;
}

uint32_t seda__runtime_spread_thread(seda_runtime_t *rt)
{
    /* Relaxed: any index is valid; the counter only spreads. */
    return atomic_fetch_add_explicit(&rt->io_spread, 1, memory_order_relaxed) % rt->cpu_threads;
}

int seda_runtime_poller(const seda_runtime_t *rt)
{
    return seda_poller_backend_of(rt->workers[0]->loop->poller);
}

const char *seda_runtime_poller_describe(const seda_runtime_t *rt)
{
    return seda_poller_describe(rt->workers[0]->loop->poller);
}

seda_stage_t **seda__snapshot_stages(seda_runtime_t *rt, size_t *n)
{
    pthread_mutex_lock(&rt->lock);
    size_t count = 0;
    for (seda_stage_t *s = rt->stages; s; s = s->next)
        count++;
    seda_stage_t **all = malloc((count ? count : 1) * sizeof *all);
    if (all) {
        size_t i = 0;
        for (seda_stage_t *s = rt->stages; s; s = s->next) {
            seda_stage_retain(s);
            all[i++] = s;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    *n = all ? count : 0;
    return all;
}

size_t seda_runtime_each_stage(seda_runtime_t *rt, void (*fn)(void *ctx, seda_stage_t *s),
                               void *ctx)
{
    size_t n;
    seda_stage_t **all = seda__snapshot_stages(rt, &n);
    for (size_t i = 0; i < n; i++) {
        fn(ctx, all[i]);
        seda_stage_release(all[i]);
    }
    free(all);
    return n;
}

seda_stage_t *seda_runtime_find_stage(seda_runtime_t *rt, const char *name)
{
    if (!rt || !name)
        return NULL;
    seda_stage_t *found = NULL;
    pthread_mutex_lock(&rt->lock);
    for (seda_stage_t *s = rt->stages; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            seda_stage_retain(s);
            found = s;
            break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return found;
}

/* Takes s out of the live list. rt->lock held. */
static void unlink_stage(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    seda_stage_t **pp = &rt->stages, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = s->next;
        if (rt->last == s)
            rt->last = prev;
        if (s->manager == SEDA_THREADS_SHARED)
            rt->concurrency_sum -= s->concurrency;
    }
}

void seda__unregister(seda_stage_t *s)
{
    pthread_mutex_lock(&s->rt->lock);
    unlink_stage(s);
    pthread_mutex_unlock(&s->rt->lock);
}

void seda__retire(seda_stage_t *s)
{
    seda_runtime_t *rt = s->rt;
    pthread_mutex_lock(&rt->lock);
    unlink_stage(s);
    s->next = rt->retired;
    rt->retired = s;
    pthread_mutex_unlock(&rt->lock);
}

void seda__release_retired(seda_runtime_t *rt)
{
    pthread_mutex_lock(&rt->lock);
    seda_stage_t *s = rt->retired;
    rt->retired = NULL;
    pthread_mutex_unlock(&rt->lock);
    while (s) {
        seda_stage_t *next = s->next;
        seda_stage_release(s); /* the runtime's reference */
        s = next;
    }
}
