/*
 * The runtime and its stages with real threads: pipelines keep order,
 * batches respect batch_max, a handler never runs twice at once, stages come
 * and go under traffic, pools resize, statistics add up, the graph is learned,
 * and shutdown drains a cyclic graph or hands back what is queued, losing
 * nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "test.h"

/* An event: a number and a time-to-live for the cyclic test. */
struct ev {
    uint64_t n;
    int ttl;
};

static _Atomic uint64_t freed, dropped;

static struct ev *ev_new(uint64_t n, int ttl)
{
    struct ev *e = malloc(sizeof *e);
    CHECK(e != NULL);
    e->n = n;
    e->ttl = ttl;
    return e;
}

static void ev_free(struct ev *e)
{
    free(e);
    atomic_fetch_add(&freed, 1);
}

static void drop_cb(void *ctx, void *event)
{
    (void)ctx;
    atomic_fetch_add(&dropped, 1);
    ev_free(event);
}

static void reset_counts(void)
{
    atomic_store(&freed, 0);
    atomic_store(&dropped, 0);
}

/* Bounded waiting for a condition some other thread makes true (a liveness
 * guard, not a timing assertion: 20 s is far beyond any honest delay). */
#define WAIT_UNTIL(cond)                                                          \
    do {                                                                          \
        int64_t wait_deadline_ = seda_clock_now(NULL) + 20000000000LL;            \
        while (!(cond)) {                                                         \
            CHECK(seda_clock_now(NULL) < wait_deadline_);                         \
            struct timespec ts_ = { 0, 1000000 };                                 \
            nanosleep(&ts_, NULL);                                                \
        }                                                                         \
    } while (0)

static size_t next_capacity = 256; /* queue capacity for make_stage */

static seda_stage_t *make_stage(seda_runtime_t *rt, const char *name, seda_handler_fn h, void *ctx,
                                int manager, uint32_t conc, uint32_t batch)
{
    seda_stage_options_t o = { .name = name, .handler = h, .ctx = ctx, .drop = drop_cb,
                               .thread_manager = manager, .concurrency = conc,
                               .batch_max = batch,
                               .queue_capacity = next_capacity };
    seda_stage_t *s = NULL;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    return s;
}

static void enqueue_retry(seda_stage_t *s, void *e)
{
    int r;
    while ((r = seda_stage_enqueue(s, e)) == -EAGAIN)
        sched_yield();
    CHECK_OK(r);
}

/* ---- a three-stage pipeline keeps FIFO order through single-threaded stages */

struct forward_ctx {
    seda_stage_t *next;
    uint64_t expect; /* last stage: next number due */
    _Atomic uint64_t done;
};

static int forward(void *ctx, void **events, size_t count)
{
    struct forward_ctx *c = ctx;
    for (size_t i = 0; i < count; i++)
        enqueue_retry(c->next, events[i]);
    return 0;
}

static int sink_in_order(void *ctx, void **events, size_t count)
{
    struct forward_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        CHECK_EQ(e->n, c->expect);
        c->expect++;
        ev_free(e);
    }
    atomic_fetch_add(&c->done, count);
    return 0;
}

static void test_pipeline_order(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct forward_ctx cc = { 0 }, cb = { 0 }, ca = { 0 };
    /* Handlers forward with a blocking retry, which on the shared threads
     * would deadlock once every thread waits on a full queue downstream:
     * give the inner queues room for everything. */
    next_capacity = 1 << 17;
    seda_stage_t *c = make_stage(rt, "c", sink_in_order, &cc, manager, 1, 32);
    cb.next = c;
    seda_stage_t *b = make_stage(rt, "b", forward, &cb, manager, 1, 7);
    ca.next = b;
    seda_stage_t *a = make_stage(rt, "a", forward, &ca, manager, 1, 64);
    next_capacity = 256;
    enum { N = 100000 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(a, ev_new(i, 0));
    WAIT_UNTIL(atomic_load(&cc.done) == N);

    seda_stage_stats_t st;
    seda_stage_stats(b, &st);
    CHECK_EQ(st.enqueued, N);
    CHECK_EQ(st.processed, N);
    CHECK(st.batches >= N / 7);
    CHECK_EQ(st.queue_delay.count, N);
    CHECK_EQ(st.service_time.count, N);
    CHECK(st.queue_peak >= 1 && st.queue_peak <= N);

    /* The graph: a -> b -> c, learned from the handlers' enqueues. */
    seda_stage_t *edges[4];
    CHECK_EQ(seda_stage_edges(a, edges, 4), 1);
    CHECK(edges[0] == b);
    seda_stage_release(edges[0]);
    CHECK_EQ(seda_stage_edges(c, edges, 4), 0);

    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    CHECK_RC(seda_stage_enqueue(a, (void *)1), -EPIPE); /* a stale handle fails cleanly */
    seda_stage_release(a);
    seda_stage_release(b);
    seda_stage_release(c);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
    CHECK_EQ(atomic_load(&dropped), 0);
}

/* ---- batches: never above batch_max, and full when work piled up -------- */

struct gate_ctx {
    _Atomic int open;
    _Atomic int entered;
    _Atomic uint64_t max_batch, events;
};

static int gated(void *ctx, void **events, size_t count)
{
    struct gate_ctx *g = ctx;
    atomic_store(&g->entered, 1);
    while (!atomic_load(&g->open))
        sched_yield();
    uint64_t m = atomic_load(&g->max_batch);
    if (count > m)
        atomic_store(&g->max_batch, count);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(&g->events, count);
    return 0;
}

static void test_batching(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct gate_ctx g = { 0 };
    seda_stage_t *s = make_stage(rt, "batcher", gated, &g, manager, 1, 16);
    enqueue_retry(s, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&g.entered)); /* the handler holds the only thread slot */
    for (uint64_t i = 1; i <= 100; i++)
        enqueue_retry(s, ev_new(i, 0));
    atomic_store(&g.open, 1);
    WAIT_UNTIL(atomic_load(&g.events) == 101);
    CHECK_EQ(atomic_load(&g.max_batch), 16);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK(st.queue_peak >= 16);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 101);
}

/* ---- a handler runs on one thread at a time unless concurrency > 1 -------- */

struct exclusive_ctx {
    _Atomic int inside, max_inside;
    _Atomic uint64_t events;
};

static int count_inside(void *ctx, void **events, size_t count)
{
    struct exclusive_ctx *x = ctx;
    int now = atomic_fetch_add(&x->inside, 1) + 1;
    int m = atomic_load(&x->max_inside);
    while (now > m && !atomic_compare_exchange_weak(&x->max_inside, &m, now)) {
    }
    for (int spin = 0; spin < 2000; spin++)
        __asm__ __volatile__("" ::: "memory");
    sched_yield();
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_sub(&x->inside, 1);
    atomic_fetch_add(&x->events, count);
    return 0;
}

struct producer_arg {
    seda_stage_t *stage;
    uint64_t count;
    _Atomic uint64_t *accepted; /* NULL: retry until accepted */
};

static void *producer(void *p)
{
    struct producer_arg *a = p;
    for (uint64_t i = 0; i < a->count; i++) {
        struct ev *e = ev_new(i, 0);
        if (!a->accepted) {
            enqueue_retry(a->stage, e);
            continue;
        }
        int r;
        while ((r = seda_stage_enqueue(a->stage, e)) == -EAGAIN)
            sched_yield();
        if (r == -EPIPE) {
            ev_free(e); /* the stage went away: ours to free */
            break;
        }
        CHECK_OK(r);
        atomic_fetch_add(a->accepted, 1);
    }
    return NULL;
}

static void test_concurrency(uint32_t conc)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 3 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    CHECK_EQ(seda_runtime_cpu_threads(rt), 3);
    struct exclusive_ctx x = { 0 };
    seda_stage_t *s = make_stage(rt, "exclusive", count_inside, &x, SEDA_THREADS_SHARED, conc, 4);
    enum { N = 20000 };
    pthread_t t[2];
    struct producer_arg pa = { .stage = s, .count = N };
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_create(&t[i], NULL, producer, &pa));
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(t[i], NULL));
    WAIT_UNTIL(atomic_load(&x.events) == 2 * N);
    CHECK(atomic_load(&x.max_inside) >= 1);
    CHECK(atomic_load(&x.max_inside) <= (int)conc);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 2 * N);
}

/* ---- destroy a stage while producers feed it; then reuse its name ------- */

static int consume_all(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(n, count);
    return 0;
}

static _Atomic int destroy_ctx_calls;
static void count_destroy(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&destroy_ctx_calls, 1);
}

static void test_destroy_under_traffic(int manager, int mode)
{
    reset_counts();
    atomic_store(&destroy_ctx_calls, 0);
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t consumed = 0, accepted = 0;
    seda_stage_options_t o = { .name = "victim", .handler = consume_all, .ctx = &consumed,
                               .drop = drop_cb, .destroy = count_destroy,
                               .thread_manager = manager, .concurrency = 2, .batch_max = 8,
                               .queue_capacity = 64 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    CHECK_RC(seda_stage_create(rt, &o, &s), -EEXIST);
    seda_stage_t *found = seda_runtime_find_stage(rt, "victim");
    CHECK(found == s);
    seda_stage_release(found);
    pthread_t t[2];
    struct producer_arg pa = { .stage = s, .count = 1000000, .accepted = &accepted };
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_create(&t[i], NULL, producer, &pa));
    WAIT_UNTIL(atomic_load(&consumed) > 1000);
    CHECK_OK(seda_stage_destroy(s, mode));
    CHECK_EQ(atomic_load(&destroy_ctx_calls), 1);
    CHECK_RC(seda_stage_destroy(s, mode), -EPIPE);
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(t[i], NULL));
    /* Every accepted event was processed or handed back, exactly once. */
    CHECK_EQ(atomic_load(&consumed) + atomic_load(&dropped), atomic_load(&accepted));
    if (mode == SEDA_SHUTDOWN_DRAIN)
        CHECK_EQ(atomic_load(&dropped), 0);
    CHECK(seda_runtime_find_stage(rt, "victim") == NULL);
    CHECK_RC(seda_stage_enqueue(s, (void *)1), -EPIPE);
    seda_stage_release(s);
    /* The name is free again. */
    CHECK_OK(seda_stage_create(rt, &o, &s));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&destroy_ctx_calls), 2);
}

/* How many of this process's threads carry `name` (as `top -H` shows them). */
static int threads_named(const char *name)
{
    char path[300], comm[32];
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            if (strcmp(comm, name) == 0)
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* ---- a dedicated pool grows and shrinks while running -------------------- */

static void test_pool_resize(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t consumed = 0;
    seda_stage_options_t o = { .name = "pool", .handler = consume_all, .ctx = &consumed,
                               .drop = drop_cb, .thread_manager = SEDA_THREADS_DEDICATED,
                               .concurrency = 1, .max_threads = 4 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.threads, 1);
    /* Threads are named after their stage or CPU. */
    CHECK_EQ(threads_named("pool"), 1);
    CHECK_EQ(threads_named("seda-cpu0"), 1);
    CHECK_RC(seda_stage_set_threads(s, 5), -EINVAL);
    CHECK_RC(seda_stage_set_threads(s, 0), -EINVAL);
    CHECK_OK(seda_stage_set_threads(s, 4));
    seda_stage_stats(s, &st);
    CHECK_EQ(st.threads, 4);
    CHECK_EQ(threads_named("pool"), 4);
    for (uint64_t i = 0; i < 1000; i++)
        enqueue_retry(s, ev_new(i, 0));
    CHECK_OK(seda_stage_set_threads(s, 2));
    WAIT_UNTIL((seda_stage_stats(s, &st), st.threads == 2));
    CHECK_OK(seda_stage_set_threads(s, 3));
    WAIT_UNTIL(atomic_load(&consumed) == 1000);
    seda_stage_stats(s, &st);
    CHECK_EQ(st.threads, 3);
    CHECK_EQ(st.concurrency, 3);
    seda_stage_t *shared = make_stage(rt, "shared", consume_all, &consumed, SEDA_THREADS_SHARED, 1, 8);
    CHECK_RC(seda_stage_set_threads(shared, 2), -ENOTSUP);
    seda_stage_release(shared);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 1000);
}

/* ---- shutdown drains a cyclic graph to quiescence --------------------------- */

struct ping_ctx {
    seda_stage_t *other;
    _Atomic uint64_t finished;
};

static int ping(void *ctx, void **events, size_t count)
{
    struct ping_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->ttl-- == 0) {
            ev_free(e);
            atomic_fetch_add(&c->finished, 1);
            continue;
        }
        int r = seda_stage_enqueue(c->other, e);
        if (r == -EAGAIN) {
            /* A full peer in a cycle: back off by handing the event to our
             * own queue's tail is not possible from here either, so keep it
             * moving by retrying; both stages run on the shared threads. */
            while ((r = seda_stage_enqueue(c->other, e)) == -EAGAIN)
                sched_yield();
        }
        CHECK_OK(r);
    }
    return 0;
}

static void test_shutdown_drains_cycle(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct ping_ctx pa = { 0 }, pb = { 0 };
    seda_stage_options_t o = { .handler = ping, .drop = drop_cb, .batch_max = 16,
                               .queue_capacity = 4096 };
    seda_stage_t *a, *b;
    o.name = "ping";
    o.ctx = &pa;
    CHECK_OK(seda_stage_create(rt, &o, &a));
    o.name = "pong";
    o.ctx = &pb;
    CHECK_OK(seda_stage_create(rt, &o, &b));
    pa.other = b;
    pb.other = a;
    enum { N = 1000, TTL = 200 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(a, ev_new(i, TTL));
    /* The graph has the cycle as soon as each side has forwarded once. */
    seda_stage_t *edges[2];
    WAIT_UNTIL(seda_stage_edges(a, NULL, 0) == 1 && seda_stage_edges(b, NULL, 0) == 1);
    CHECK_EQ(seda_stage_edges(a, edges, 2), 1);
    CHECK(edges[0] == b);
    seda_stage_release(edges[0]);
    /* Shut down now: most events are still bouncing between the two. */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    CHECK_EQ(atomic_load(&pa.finished) + atomic_load(&pb.finished), N);
    CHECK_EQ(atomic_load(&dropped), 0);
    CHECK_EQ(atomic_load(&freed), N);
    CHECK_EQ(seda_stage_edges(a, edges, 2), 0); /* b is gone */
    CHECK_RC(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1), -EPIPE);
    seda_stage_release(a);
    seda_stage_release(b);
    seda_runtime_destroy(rt);
}

/* ---- shutdown that hands back what is queued ------------------------------ */

static int slow(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(n, count);
    return 0;
}

static void test_shutdown_hands_back(int manager)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t processed = 0;
    seda_stage_t *s = make_stage(rt, "slow", slow, &processed, manager, 1, 4);
    for (uint64_t i = 0; i < 200; i++)
        enqueue_retry(s, ev_new(i, 0));
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, 0));
    CHECK(atomic_load(&dropped) > 0);
    CHECK_EQ(atomic_load(&processed) + atomic_load(&dropped), 200);
    CHECK_EQ(atomic_load(&freed), 200);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.handed_back, atomic_load(&dropped));
    CHECK_RC(seda_stage_enqueue(s, (void *)1), -EPIPE);
    seda_stage_stats(s, &st);
    CHECK_EQ(st.rejected_closed, 1);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
}

/* ---- statistics against a manual clock: deterministic times -------------- */

static seda_clock_t *manual;

static int takes_5ms(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    seda_clock_manual_advance(manual, 5000000 * (int64_t)count);
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_fetch_add(n, count);
    return count == 3 ? -1 : 0; /* a handler error, counted */
}

static void test_stats_manual_clock(void)
{
    reset_counts();
    CHECK_OK(seda_clock_manual_create(&manual, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = manual };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    CHECK(seda_runtime_clock(rt) == manual);
    _Atomic uint64_t n = 0;
    seda_stage_t *s = make_stage(rt, "timed", takes_5ms, &n, SEDA_THREADS_DEDICATED, 1, 64);
    void *batch[3] = { ev_new(1, 0), ev_new(2, 0), ev_new(3, 0) };
    /* The handler moves the clock 5 ms per event, so service times are
     * exact whatever the machine is doing. */
    CHECK_RC(seda_stage_enqueue_many(s, batch, 3), 3);
    WAIT_UNTIL(atomic_load(&n) == 3);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.processed, 3);
    CHECK_EQ(st.handler_ns, 15000000);
    CHECK_EQ(st.service_time.count, 3);
    uint64_t p50 = seda_histogram_quantile(&st.service_time, 0.5);
    CHECK(p50 >= 5000000 * 7 / 8 && p50 <= 5000000);
    CHECK_EQ(st.service_time.max_ns, 5000000);
    CHECK_EQ(st.handler_errors, st.batches == 1 ? 1 : 0);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    seda_clock_destroy(manual);
}

static void test_histogram(void)
{
    CHECK_EQ(seda_histogram_bucket(0), 0);
    CHECK_EQ(seda_histogram_bucket(7), 7);
    for (uint64_t v = 1; v < (1ull << 40); v = v * 3 + 1) {
        uint32_t b = seda_histogram_bucket(v);
        CHECK(seda_histogram_bucket_max(b) >= v);
        CHECK(b == 0 || seda_histogram_bucket_max(b - 1) < v);
        CHECK(seda_histogram_bucket_max(b) - v <= v / 8);
    }
    CHECK(seda_histogram_bucket(UINT64_MAX) < SEDA_HISTOGRAM_BUCKETS);
    static seda_histogram_snapshot_t h;
    memset(&h, 0, sizeof h);
    for (uint64_t v = 1; v <= 100; v++) {
        h.buckets[seda_histogram_bucket(v * 1000)]++;
        h.count++;
    }
    h.max_ns = 100000;
    uint64_t p90 = seda_histogram_quantile(&h, 0.9);
    CHECK(p90 >= 90000 && p90 <= 90000 + 90000 / 8);
    CHECK_EQ(seda_histogram_quantile(&h, 1.0), 100000);
}

/* ---- destroy from handlers: refused where it would wait for itself --------- */

struct destroyer_ctx {
    seda_stage_t *victim;
    _Atomic int result;
    _Atomic int done;
};

static int destroy_from_handler(void *ctx, void **events, size_t count)
{
    struct destroyer_ctx *d = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    atomic_store(&d->result, seda_stage_destroy(d->victim, SEDA_SHUTDOWN_DRAIN));
    atomic_store(&d->done, 1);
    return 0;
}

static int resize_self(void *ctx, void **events, size_t count)
{
    seda_stage_t **self = ctx;
    for (size_t i = 0; i < count; i++)
        ev_free(events[i]);
    int r = seda_stage_set_threads(*self, 2); /* racing a destroy: never a deadlock */
    CHECK(r == 0 || r == -EPIPE);
    return 0;
}

static void test_destroy_from_handlers(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t n = 0;
    seda_stage_t *victim = make_stage(rt, "victim", consume_all, &n, SEDA_THREADS_SHARED, 1, 8);
    struct destroyer_ctx d = { .victim = victim };
    seda_stage_t *killer = make_stage(rt, "killer", destroy_from_handler, &d, SEDA_THREADS_SHARED, 1, 8);
    enqueue_retry(killer, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_RC(atomic_load(&d.result), -EDEADLK);
    /* From a dedicated stage's handler it works. */
    atomic_store(&d.done, 0);
    seda_stage_t *dkiller = make_stage(rt, "dkiller", destroy_from_handler, &d, SEDA_THREADS_DEDICATED, 1, 8);
    enqueue_retry(dkiller, ev_new(1, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_OK(atomic_load(&d.result));

    /* A pool whose handler resizes it, destroyed while draining. */
    seda_stage_t *self = NULL;
    seda_stage_options_t o = { .name = "resizer", .handler = resize_self, .ctx = &self,
                               .drop = drop_cb, .thread_manager = SEDA_THREADS_DEDICATED,
                               .concurrency = 1, .max_threads = 2, .batch_max = 1,
                               .queue_capacity = 1024 };
    CHECK_OK(seda_stage_create(rt, &o, &self));
    for (uint64_t i = 0; i < 500; i++)
        enqueue_retry(self, ev_new(i, 0));
    CHECK_OK(seda_stage_destroy(self, SEDA_SHUTDOWN_DRAIN));
    seda_stage_release(self);
    seda_stage_release(victim);
    seda_stage_release(killer);
    seda_stage_release(dkiller);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 502);
}

/* ---- waiting for room: from outside yes, on the shared threads never ------- */

static int try_wait_enqueue(void *ctx, void **events, size_t count)
{
    struct destroyer_ctx *d = ctx; /* victim: where to enqueue */
    atomic_store(&d->result, seda_stage_enqueue_wait(d->victim, events[0], -1));
    for (size_t i = 1; i < count; i++)
        ev_free(events[i]);
    if (atomic_load(&d->result) != 0)
        ev_free(events[0]);
    atomic_store(&d->done, 1);
    return 0;
}

static void test_enqueue_wait(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct gate_ctx g = { 0 };
    seda_stage_options_t o = { .name = "gated", .handler = gated, .ctx = &g, .drop = drop_cb,
                               .batch_max = 1, .queue_capacity = 2 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    enqueue_retry(s, ev_new(0, 0));
    WAIT_UNTIL(atomic_load(&g.entered));
    enqueue_retry(s, ev_new(1, 0));
    enqueue_retry(s, ev_new(2, 0));
    struct ev *late = ev_new(3, 0);
    CHECK_RC(seda_stage_enqueue_wait(s, late, 1000000), -ETIMEDOUT);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.rejected_full, 1);

    /* A handler on the shared threads may not wait. */
    struct destroyer_ctx d = { .victim = s };
    seda_stage_t *waiter = make_stage(rt, "waiter", try_wait_enqueue, &d, SEDA_THREADS_SHARED, 1, 1);
    enqueue_retry(waiter, ev_new(4, 0));
    WAIT_UNTIL(atomic_load(&d.done));
    CHECK_RC(atomic_load(&d.result), -EDEADLK);

    /* From outside, the wait ends when the stage makes room. */
    atomic_store(&g.open, 1);
    CHECK_OK(seda_stage_enqueue_wait(s, late, -1));
    WAIT_UNTIL(atomic_load(&g.events) == 4);
    seda_stage_release(s);
    seda_stage_release(waiter);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 5);
}

/* ---- CoDel under overload, on a manual clock: drops, but never control ---- */

struct codel_ctx {
    seda_clock_t *clock;
    _Atomic uint64_t handled, controls;
};

static int takes_10ms(void *ctx, void **events, size_t count)
{
    struct codel_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (e->ttl == -1)
            atomic_fetch_add(&c->controls, 1);
        ev_free(e);
    }
    seda_clock_manual_advance(c->clock, 10000000 * (int64_t)count);
    atomic_fetch_add(&c->handled, count);
    return 0;
}

static void run_codel(int discipline, uint64_t *out_handled, uint64_t *out_dropped, uint64_t *out_controls)
{
    reset_counts();
    struct codel_ctx c = { 0 };
    CHECK_OK(seda_clock_manual_create(&c.clock, 1000000000));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = c.clock };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    seda_stage_options_t o = { .name = "codel", .handler = takes_10ms, .ctx = &c, .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_DEDICATED, .batch_max = 1,
                               .queue_capacity = 512, .discipline = discipline,
                               .codel_target_ns = 5000000, .codel_interval_ns = 100000000 };
    seda_stage_t *s;
    void *batch[200];
    for (int i = 0; i < 200; i++)
        batch[i] = ev_new((uint64_t)i, i % 20 == 0 ? -1 : 0); /* every 20th: control */
    CHECK_OK(seda_stage_create(rt, &o, &s));
    /* 200 events at once, 10 ms each: a 2 s backlog against a 5 ms target. */
    for (int i = 0; i < 200; i++) {
        if (((struct ev *)batch[i])->ttl == -1)
            CHECK_OK(seda_stage_enqueue_control(s, batch[i]));
        else
            CHECK_OK(seda_stage_enqueue(s, batch[i]));
    }
    WAIT_UNTIL(atomic_load(&c.handled) + atomic_load(&dropped) == 200);
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.dropped, atomic_load(&dropped));
    CHECK_EQ(st.processed + st.dropped, 200);
    *out_handled = atomic_load(&c.handled);
    *out_dropped = st.dropped;
    *out_controls = atomic_load(&c.controls);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    seda_clock_destroy(c.clock);
    CHECK_EQ(atomic_load(&freed), 200);
}

static void test_codel(void)
{
    uint64_t handled, dropped, controls;
    run_codel(SEDA_DISCIPLINE_FIFO, &handled, &dropped, &controls);
    CHECK_EQ(dropped, 0);
    CHECK_EQ(handled, 200);
    run_codel(SEDA_DISCIPLINE_CODEL, &handled, &dropped, &controls);
    CHECK(dropped > 0);
    CHECK_EQ(controls, 10); /* every control event was handled */
    /* Nothing is dropped before the waiting time has been above target for
     * a whole interval: the first ~10 events (100 ms at 10 ms) all run. */
    CHECK(handled >= 10);
}

/* ---- strict priority classes: class 0 first, then 1, then 2 --------------- */

struct order_ctx {
    struct gate_ctx gate;
    uint64_t seen[64];
    _Atomic uint64_t n;
};

static int record_order(void *ctx, void **events, size_t count)
{
    struct order_ctx *o = ctx;
    atomic_store(&o->gate.entered, 1);
    while (!atomic_load(&o->gate.open))
        sched_yield();
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        o->seen[atomic_load(&o->n) + i] = e->n;
        ev_free(e);
    }
    atomic_fetch_add(&o->n, count);
    return 0;
}

static void test_priority_classes(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct order_ctx o = { 0 };
    seda_stage_options_t so = { .name = "prio", .handler = record_order, .ctx = &o, .drop = drop_cb,
                                .thread_manager = SEDA_THREADS_DEDICATED, .batch_max = 1,
                                .queue_capacity = 16, .classes = 3 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &so, &s));
    struct ev *wrong = ev_new(99, 0);
    CHECK_RC(seda_stage_enqueue_class(s, wrong, 3), -EINVAL);
    free(wrong); /* not counted: never entered the stage */
    CHECK_OK(seda_stage_enqueue(s, ev_new(100, 0))); /* holds the thread at the gate */
    WAIT_UNTIL(atomic_load(&o.gate.entered));
    /* n = 10 * class + i; plain enqueues are class 2, control is class 0. */
    for (uint32_t i = 0; i < 3; i++)
        for (uint32_t c = 3; c-- > 0;)
            CHECK_OK(seda_stage_enqueue_class(s, ev_new(10 * c + i, 0), c));
    CHECK_OK(seda_stage_enqueue(s, ev_new(23, 0)));
    CHECK_OK(seda_stage_enqueue_control(s, ev_new(3, 0)));
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.queue_length, 11);
    atomic_store(&o.gate.open, 1);
    WAIT_UNTIL(atomic_load(&o.n) == 12);
    uint64_t want[12] = { 100, 0, 1, 2, 3, 10, 11, 12, 20, 21, 22, 23 };
    for (int i = 0; i < 12; i++)
        CHECK_EQ(o.seen[i], want[i]);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 12);
}

/* ---- refuse to schedule upstream of a clogged stage; cycles never park ----- */

struct pause_ctx {
    seda_stage_t *self, *next; /* next NULL: a slow sink */
    _Atomic uint64_t finished, shed;
};

/* Forwards (or, as a sink, consumes slowly); when the next stage is full,
 * puts the rest of the batch back into its own queue, or sheds an event if
 * that is full too (counted). */
static int forward_or_keep(void *ctx, void **events, size_t count)
{
    struct pause_ctx *c = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        if (!c->next || e->ttl-- <= 0) {
            if (!c->next) {
                struct timespec ts = { 0, 100000 }; /* a slow sink: 0.1 ms an event */
                nanosleep(&ts, NULL);
            }
            ev_free(e);
            atomic_fetch_add(&c->finished, 1);
            continue;
        }
        if (seda_stage_enqueue(c->next, e) == 0)
            continue;
        e->ttl++;
        if (seda_stage_enqueue(c->self, e) != 0) {
            ev_free(e);
            atomic_fetch_add(&c->shed, 1);
        }
    }
    return 0;
}

static void test_pause_upstream_of_clogged(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    struct pause_ctx up = { 0 }, down = { 0 };
    seda_stage_options_t o = { .handler = forward_or_keep, .drop = drop_cb, .batch_max = 8 };
    o.name = "down";
    o.ctx = &down;
    o.queue_capacity = 8;
    CHECK_OK(seda_stage_create(rt, &o, &down.self));
    o.name = "up";
    o.ctx = &up;
    o.queue_capacity = 4096;
    o.pause_when_clogged = 1;
    CHECK_OK(seda_stage_create(rt, &o, &up.self));
    up.next = down.self;
    o.thread_manager = SEDA_THREADS_DEDICATED;
    CHECK_RC(seda_stage_create(rt, &o, &up.self), -EINVAL); /* shared threads only */
    enum { N = 2000 };
    for (uint64_t i = 0; i < N; i++)
        enqueue_retry(up.self, ev_new(i, 1));
    WAIT_UNTIL(atomic_load(&down.finished) + atomic_load(&up.shed) == N);
    seda_stage_stats_t su, sd;
    seda_stage_stats(up.self, &su);
    seda_stage_stats(down.self, &sd);
    CHECK(su.pauses > 0);               /* "up" waited for "down" to drain */
    CHECK(sd.queue_peak <= 8);
    CHECK_EQ(atomic_load(&up.shed), 0); /* its own queue had room: nothing lost */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(up.self);
    seda_stage_release(down.self);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
}

static void test_cycle_under_overload(void)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    struct pause_ctx a = { 0 }, b = { 0 };
    seda_stage_options_t o = { .handler = forward_or_keep, .drop = drop_cb, .batch_max = 4,
                               .queue_capacity = 16, .pause_when_clogged = 1 };
    o.name = "ping";
    o.ctx = &a;
    CHECK_OK(seda_stage_create(rt, &o, &a.self));
    o.name = "pong";
    o.ctx = &b;
    CHECK_OK(seda_stage_create(rt, &o, &b.self));
    a.next = b.self;
    b.next = a.self;
    /* Far more events than the cycle holds: both stages clog at once. */
    enum { N = 2000 };
    uint64_t accepted = 0;
    for (uint64_t i = 0; i < N; i++) {
        struct ev *e = ev_new(i, 50);
        if (seda_stage_enqueue(i % 2 ? a.self : b.self, e) == 0)
            accepted++;
        else
            ev_free(e);
    }
    /* Neither waits for the other for ever: the graph drains to quiescence. */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    uint64_t finished = atomic_load(&a.finished) + atomic_load(&b.finished);
    uint64_t shed = atomic_load(&a.shed) + atomic_load(&b.shed);
    CHECK_EQ(finished + shed, accepted);
    seda_stage_release(a.self);
    seda_stage_release(b.self);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), N);
}

/* ---- a tiny run queue: momentarily "full" rings never strand a stage ------ */

static void test_tiny_run_queue(void)
{
    reset_counts();
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .run_queue_capacity = 2, .cpu_threads = 2 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    _Atomic uint64_t n = 0;
    seda_stage_t *a = make_stage(rt, "a", consume_all, &n, SEDA_THREADS_SHARED, 1, 1);
    seda_stage_t *b = make_stage(rt, "b", consume_all, &n, SEDA_THREADS_SHARED, 1, 1);
    struct producer_arg pa = { .stage = a, .count = 20000 }, pb = { .stage = b, .count = 20000 };
    pthread_t t[2];
    CHECK_OK(pthread_create(&t[0], NULL, producer, &pa));
    CHECK_OK(pthread_create(&t[1], NULL, producer, &pb));
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_join(t[i], NULL));
    WAIT_UNTIL(atomic_load(&n) == 40000);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(a);
    seda_stage_release(b);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 40000);
}

static void test_bad_options(void)
{
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    seda_stage_t *s;
    seda_stage_options_t o = { .name = "x", .handler = consume_all, .drop = drop_cb };
    o.drop = NULL;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.drop = drop_cb;
    o.name = "";
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.name = "x";
    o.thread_manager = 7;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.thread_manager = SEDA_THREADS_SHARED;
    o.batch_max = 5000;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL);
    o.batch_max = 0;
    o.concurrency = 70000; /* more than the run queue can carry */
    CHECK_RC(seda_stage_create(rt, &o, &s), -ENOSPC);
    seda_runtime_destroy(rt);
}

int main(void)
{
    test_histogram();
    test_bad_options();
    test_pipeline_order(SEDA_THREADS_SHARED);
    test_pipeline_order(SEDA_THREADS_DEDICATED);
    test_batching(SEDA_THREADS_SHARED);
    test_batching(SEDA_THREADS_DEDICATED);
    test_concurrency(1);
    test_concurrency(2);
    test_destroy_under_traffic(SEDA_THREADS_SHARED, SEDA_SHUTDOWN_DRAIN);
    test_destroy_under_traffic(SEDA_THREADS_SHARED, SEDA_SHUTDOWN_HAND_BACK);
    test_destroy_under_traffic(SEDA_THREADS_DEDICATED, SEDA_SHUTDOWN_DRAIN);
    test_destroy_under_traffic(SEDA_THREADS_DEDICATED, SEDA_SHUTDOWN_HAND_BACK);
    test_pool_resize();
    test_shutdown_drains_cycle();
    test_shutdown_hands_back(SEDA_THREADS_SHARED);
    test_shutdown_hands_back(SEDA_THREADS_DEDICATED);
    test_stats_manual_clock();
    test_destroy_from_handlers();
    test_tiny_run_queue();
    test_enqueue_wait();
    test_codel();
    test_priority_classes();
    test_pause_upstream_of_clogged();
    test_cycle_under_overload();
    puts("runtime: ok");
    return 0;
}
