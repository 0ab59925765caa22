/*
 * File stage: the home worker, on every engine.
 *
 *  - a stage bound to shared thread 1 (bind_to_thread) reports it, and
 *    every read, write and sync completion of the io_uring and libaio
 *    engines is delivered on that thread (seda_runtime_thread_index in the
 *    deliver callback); open and close, and every request of the threads
 *    engine, complete on the pool (index -1);
 *  - two stages created without binding get different home workers, each
 *    delivering on its own;
 *  - a thread_index that is not a shared thread is refused.
 */
#include <stdatomic.h>

#include "file_test.h"

#define N 64
#define LEN 4096

/* Counts completions by the thread that delivered them. */
struct where {
    ft_collector_t c;
    seda_runtime_t *rt;
    _Atomic int on[4]; /* index 0..2: shared thread; 3: not a shared thread */
};

static void where_deliver(void *ctx, seda_file_event_t *ev)
{
    struct where *w = ctx;
    int i = seda_runtime_thread_index(w->rt);
    CHECK(i >= -1 && i < 3);
    atomic_fetch_add(&w->on[i < 0 ? 3 : i], 1);
    ft_push(&w->c, ev);
}

static void where_init(struct where *w, seda_runtime_t *rt)
{
    memset(w, 0, sizeof *w);
    ft_collector_init(&w->c);
    w->c.sink.deliver = where_deliver;
    w->c.sink.ctx = w;
    w->rt = rt;
}

/* Writes N blocks, syncs, reads them back; every completion through w.
 * Returns the file (still open). */
static seda_file_t *write_read(seda_file_stage_t *fs, const char *path, struct where *w)
{
    int err;
    seda_file_t *f = ft_open(fs, path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, &err);
    CHECK_RC(err, 0);
    void *bufs[N];
    for (int i = 0; i < N; i++) {
        bufs[i] = seda_file_buffer_alloc(fs, LEN);
        CHECK(bufs[i]);
        memset(bufs[i], i + 1, LEN);
        CHECK_OK(seda_file_write(f, (uint64_t)i * LEN, bufs[i], LEN, &w->c.sink, NULL));
    }
    ft_wait(&w->c, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ft_at(&w->c, (size_t)i)->result, LEN);
    CHECK_OK(seda_file_sync(f, 1, &w->c.sink, NULL));
    ft_wait(&w->c, N + 1);
    CHECK_EQ(ft_at(&w->c, N)->result, 0);
    for (int i = 0; i < N; i++)
        CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &w->c.sink, NULL));
    ft_wait(&w->c, 2 * N + 1);
    for (size_t i = N + 1; i < 2 * N + 1; i++) {
        seda_file_event_t *ev = ft_at(&w->c, i);
        CHECK_EQ(ev->result, LEN);
        CHECK_EQ(((unsigned char *)ev->buf)[LEN - 1], (unsigned char)(ev->offset / LEN + 1));
    }
    ft_release_all(&w->c);
    for (int i = 0; i < N; i++)
        seda_file_buffer_free(fs, bufs[i]);
    return f;
}

/* Where the 2N + 1 completions of write_read went, on the stage's engine. */
static void check_where(struct where *w, int engine, uint32_t home)
{
    for (int i = 0; i < 4; i++) {
        int want = 0;
        if (engine == SEDA_DISK_THREADS ? i == 3 : i == (int)home)
            want = 2 * N + 1;
        CHECK_EQ(atomic_load(&w->on[i]), want);
    }
}

static void bound(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bound-%d", dir, engine);
    seda_runtime_t *rt = ft_runtime(3);
    seda_file_stage_options_t o = { .bind_to_thread = 1, .thread_index = 1 };
    seda_file_stage_t *fs = ft_stage(rt, engine, &o);
    CHECK_EQ(seda_file_stage_thread(fs), 1);
    struct where w;
    where_init(&w, rt);
    seda_file_t *f = write_read(fs, path, &w);
    check_where(&w, engine, 1);
    ft_close(f);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    ft_collector_fini(&w.c);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

static void spread(int engine, const char *dir)
{
    char path[2][256];
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs[2];
    struct where w[2];
    seda_file_t *f[2];
    for (int k = 0; k < 2; k++) {
        seda_file_stage_options_t o = { .name = k ? "disk1" : "disk0" };
        fs[k] = ft_stage(rt, engine, &o);
        CHECK(seda_file_stage_thread(fs[k]) < 2);
        snprintf(path[k], sizeof path[k], "%s/spread-%d-%d", dir, engine, k);
        where_init(&w[k], rt);
    }
    CHECK(seda_file_stage_thread(fs[0]) != seda_file_stage_thread(fs[1]));
    for (int k = 0; k < 2; k++) {
        f[k] = write_read(fs[k], path[k], &w[k]);
        check_where(&w[k], engine, seda_file_stage_thread(fs[k]));
    }
    for (int k = 0; k < 2; k++) {
        ft_close(f[k]);
        ft_check_quiet(fs[k]);
        seda_file_stage_destroy(fs[k]);
        ft_collector_fini(&w[k].c);
    }
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

static void refused(void)
{
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_options_t o = { .name = "disk", .bind_to_thread = 1, .thread_index = 2 };
    seda_file_stage_t *fs = NULL;
    CHECK_RC(seda_file_stage_create(rt, &o, &fs), -EINVAL);
    CHECK(fs == NULL);
    seda_runtime_destroy(rt);
}

int main(void)
{
    char dir[64];
    ft_tmpdir(dir, sizeof dir);
    int fds = ft_count_fds();
    refused();
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        int engine = ft_engines[i];
        if (!ft_engine_available(engine))
            continue;
        bound(engine, dir);
        spread(engine, dir);
        CHECK_EQ(ft_count_fds(), fds);
        ran++;
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
