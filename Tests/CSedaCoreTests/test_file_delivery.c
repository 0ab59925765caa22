/*
 * File stage: delivery of completions to sink stages, on every engine.
 *
 *  - a sink stage whose queue is full loses nothing: the completions wait
 *    (counted as delivery retries) until it takes them; here the sink's
 *    handler is held at a gate until every result is known, so that its
 *    queue of 2 must overflow;
 *  - a sink stage destroyed, and released by its creator, while requests
 *    are in flight: the requests kept it alive, and their completions go to
 *    the undeliverable callback;
 *  - an outside thread and a handler both make requests.
 */
#include "file_test.h"

#include <stdatomic.h>

#define N 64
#define LEN 4096

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void set_gate(int open)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = open;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* The sink's handler: held at the gate, then collects. */
static int gated(void *ctx, void **events, size_t count)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return ft_handler(ctx, events, count);
}

static seda_file_t *open_data(seda_file_stage_t *fs, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/data", dir);
    int err;
    seda_file_t *f = ft_open(fs, path, O_RDONLY | O_DIRECT, &err);
    CHECK_RC(err, 0);
    return f;
}

static void full_sink(int engine, const char *dir)
{
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    seda_file_t *f = open_data(fs, dir);
    ft_collector_t c;
    ft_collector_init(&c);
    seda_stage_options_t so = {
        .name = "sink",
        .queue_capacity = 2,
        .thread_manager = SEDA_THREADS_DEDICATED,
        .handler = gated,
        .drop = ft_drop,
        .ctx = &c,
    };
    CHECK_OK(seda_stage_create(rt, &so, &c.stage));
    c.sink.stage = c.stage;
    c.sink.deliver = NULL;
    set_gate(0);
    for (int i = 0; i < N; i++)
        CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &c.sink, NULL));
    /* Every result known while the sink holds 2 in its queue and a batch
     * in its handler: each completion it could not take was kept (parked)
     * at least once. */
    seda_file_stage_stats_t st;
    seda_stage_stats_t ss;
    for (int tries = 0;; tries++) {
        seda_file_stage_stats(fs, &st);
        seda_stage_stats(c.stage, &ss);
        if (st.completed == N + 1 /* + the open */ && st.delivery_retries >= N - ss.enqueued)
            break;
        CHECK(tries < FT_HANG_SECONDS * 1000);
        usleep(1000);
    }
    CHECK(ss.enqueued < N);
    CHECK_EQ(ft_count(&c), 0);
    set_gate(1);
    ft_wait(&c, N);
    for (int i = 0; i < N; i++) {
        seda_file_event_t *ev = ft_at(&c, (size_t)i);
        CHECK_EQ(ev->result, LEN);
        CHECK_EQ(((unsigned char *)ev->buf)[0], (unsigned char)(ev->offset / LEN));
    }
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.undeliverable, 0);
    ft_collector_fini(&c);
    ft_close(f);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

static void sink_gone(int engine, const char *dir)
{
    seda_runtime_t *rt = ft_runtime(2);
    ft_collector_t gone;
    ft_collector_init(&gone);
    seda_file_stage_options_t o = { .undeliverable = ft_undeliverable, .undeliverable_ctx = &gone };
    seda_file_stage_t *fs = ft_stage(rt, engine, &o);
    seda_file_t *f = open_data(fs, dir);
    ft_collector_t c;
    ft_collector_init(&c);
    seda_stage_options_t so = {
        .name = "sink",
        .thread_manager = SEDA_THREADS_DEDICATED,
        .handler = gated,
        .drop = ft_drop,
        .ctx = &c,
    };
    seda_stage_t *sink;
    CHECK_OK(seda_stage_create(rt, &so, &sink));
    seda_file_sink_t to = { .stage = sink };
    set_gate(1);
    for (int i = 0; i < N; i++)
        CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &to, NULL));
    /* Gone while the reads are in flight: each completion is handled (it
     * came in time), dropped (queued when the stage went) or undeliverable
     * (it came later), exactly once. */
    CHECK_OK(seda_stage_destroy(sink, SEDA_SHUTDOWN_HAND_BACK));
    seda_stage_release(sink); /* the requests hold their own references */
    for (int tries = 0;; tries++) {
        pthread_mutex_lock(&c.lock);
        pthread_mutex_lock(&gone.lock);
        size_t seen = c.n + c.dropped + gone.undelivered;
        pthread_mutex_unlock(&gone.lock);
        pthread_mutex_unlock(&c.lock);
        if (seen >= N)
            break;
        CHECK(tries < FT_HANG_SECONDS * 1000);
        usleep(1000);
    }
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    pthread_mutex_lock(&c.lock);
    pthread_mutex_lock(&gone.lock);
    CHECK_EQ(c.n + c.dropped + gone.undelivered, N);
    CHECK_EQ(gone.undelivered, st.undeliverable);
    pthread_mutex_unlock(&gone.lock);
    pthread_mutex_unlock(&c.lock);
    ft_release_all(&c);
    ft_close(f);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
    ft_collector_fini(&c);
    ft_collector_fini(&gone);
}

/* A handler that reads the next block for each completion it gets: requests
 * made from the runtime's shared threads, completions back to the same stage. */
struct chain {
    seda_file_t *f;
    seda_file_sink_t sink;
    ft_collector_t *c;
    _Atomic int next;
};

static int chain_handler(void *ctx, void **events, size_t count)
{
    struct chain *ch = ctx;
    for (size_t i = 0; i < count; i++) {
        int k = atomic_fetch_add(&ch->next, 1);
        if (k < N)
            CHECK_OK(seda_file_read(ch->f, (uint64_t)k * LEN, NULL, LEN, &ch->sink, NULL));
        ft_push(ch->c, events[i]);
    }
    return 0;
}

static void chain_drop(void *ctx, void *event)
{
    struct chain *ch = ctx;
    ft_drop(ch->c, event);
}

static void from_handlers(int engine, const char *dir)
{
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    ft_collector_t c;
    ft_collector_init(&c);
    struct chain ch = { .f = open_data(fs, dir), .c = &c, .next = 4 };
    /* ch.sink is read by the handler only once events flow, after it is set. */
    seda_stage_options_t so = {
        .name = "chain", .handler = chain_handler, .drop = chain_drop, .ctx = &ch
    };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &so, &s));
    ch.sink.stage = s;
    for (int k = 0; k < 4; k++) /* four chains in flight, from outside */
        CHECK_OK(seda_file_read(ch.f, (uint64_t)k * LEN, NULL, LEN, &ch.sink, NULL));
    ft_wait(&c, N); /* N reads in all: 4 started outside, N - 4 by the handler */
    for (int i = 0; i < N; i++) {
        seda_file_event_t *ev = ft_at(&c, (size_t)i);
        CHECK_EQ(ev->result, LEN);
        CHECK_EQ(((unsigned char *)ev->buf)[LEN / 2], (unsigned char)(ev->offset / LEN));
    }
    ft_close(ch.f);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    CHECK_EQ(ft_count(&c), N);
    ft_release_all(&c);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    seda_stage_release(s);
    ft_collector_fini(&c);
    seda_runtime_destroy(rt);
}

int main(void)
{
    char dir[64], path[128];
    ft_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/data", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    for (int i = 0; i < N; i++) {
        unsigned char b[LEN];
        memset(b, i, sizeof b);
        CHECK_EQ(pwrite(fd, b, sizeof b, (off_t)i * LEN), LEN);
    }
    close(fd);
    int fds = ft_count_fds();
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        int engine = ft_engines[i];
        if (!ft_engine_available(engine))
            continue;
        full_sink(engine, dir);
        sink_gone(engine, dir);
        from_handlers(engine, dir);
        CHECK_EQ(ft_count_fds(), fds);
        ran++;
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
