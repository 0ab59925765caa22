/*
 * File stage: cancellation, on every engine.
 *
 *  - close while requests wait in the stage: they fail with -ECANCELED
 *    (deterministic: the stage's threads are held until the close is made),
 *    and the CLOSE completion comes after all of them;
 *  - close while requests are in the kernel: each completes or fails with
 *    -ECANCELED, the CLOSE comes last;
 *  - runtime shutdown with DRAIN while requests are in flight: every
 *    completion reaches the sink stage's handler;
 *  - runtime shutdown with HAND_BACK: every completion reaches the handler,
 *    the sink's drop callback or the undeliverable callback, exactly once;
 *  - destroying the file stage with requests in flight, runtime running.
 * Nothing leaks: descriptors, buffers, events.
 */
#include "file_test.h"

#define N 256
#define LEN 4096

/* A gate a handler waits at. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_waiting;

static int blocker(void *ctx, void **events, size_t count)
{
    (void)ctx, (void)events, (void)count;
    pthread_mutex_lock(&gate_lock);
    gate_waiting++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    gate_waiting--;
    pthread_mutex_unlock(&gate_lock);
    return 0;
}

/* Waits until a blocker's handler holds its thread at the gate. */
static void wait_blocked(void)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_waiting)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void nodrop(void *ctx, void *event)
{
    (void)ctx, (void)event;
}

static void set_gate(int open)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = open;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* A file of N * LEN bytes, written (and closed) directly. */
static void make_file(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(fd >= 0);
    unsigned char b[LEN];
    for (int i = 0; i < N; i++) {
        memset(b, i, sizeof b);
        CHECK_EQ(pwrite(fd, b, sizeof b, (off_t)i * LEN), LEN);
    }
    close(fd);
}

static seda_file_t *open_direct(seda_file_stage_t *fs, const char *path)
{
    int err;
    seda_file_t *f = ft_open(fs, path, O_RDONLY | O_DIRECT, &err);
    CHECK_RC(err, 0);
    return f;
}

static void check_read(seda_file_event_t *ev, int allow_cancel)
{
    CHECK_EQ(ev->op, SEDA_FILE_READ);
    if (ev->result == -ECANCELED && allow_cancel)
        return;
    CHECK_EQ(ev->result, LEN);
    CHECK_EQ(((unsigned char *)ev->buf)[LEN - 1], (unsigned char)(ev->offset / LEN));
}

/* Requests wait behind held threads; the close cancels every one. */
static void close_queued(int engine, const char *dir)
{
    char path[256], fifo[256];
    snprintf(path, sizeof path, "%s/data", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo-%d", dir, engine);
    CHECK(mkfifo(fifo, 0600) == 0);
    /* One shared thread and one pool thread, both about to be held. */
    seda_runtime_t *rt = ft_runtime(1);
    seda_file_stage_options_t o = { .threads = 1 };
    seda_file_stage_t *fs = ft_stage(rt, engine, &o);
    seda_file_t *f = open_direct(fs, path);

    seda_stage_options_t so = { .name = "blocker", .handler = blocker, .drop = nodrop };
    seda_stage_t *b;
    CHECK_OK(seda_stage_create(rt, &so, &b));
    set_gate(0);
    static char token;
    CHECK_OK(seda_stage_enqueue(b, &token)); /* holds the shared thread */
    wait_blocked();                          /* before any request: the submission stage, bound to
                     * that thread, would otherwise run first */
    ft_collector_t fifo_c;
    ft_collector_init(&fifo_c);
    CHECK_OK(seda_file_open(fs, fifo, O_RDONLY, 0, &fifo_c.sink, NULL)); /* holds the pool */

    ft_collector_t c;
    ft_collector_init(&c);
    for (int i = 0; i < N; i++)
        CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &c.sink, NULL));
    CHECK_OK(seda_file_close(f, &c.sink, NULL));
    CHECK_RC(seda_file_read(f, 0, NULL, LEN, &c.sink, NULL), -EBADF);

    /* Let go: a writer releases the pool's open, the gate the shared thread. */
    int w = -1;
    for (int tries = 0; w < 0; tries++) {
        w = open(fifo, O_WRONLY | O_NONBLOCK);
        CHECK(w >= 0 || errno == ENXIO); /* ENXIO: the pool is not in open(2) yet */
        CHECK(tries < FT_HANG_SECONDS * 1000);
        if (w < 0)
            usleep(1000);
    }
    set_gate(1);
    ft_wait(&c, N + 1);
    for (int i = 0; i < N; i++) {
        seda_file_event_t *ev = ft_at(&c, (size_t)i);
        CHECK_EQ(ev->op, SEDA_FILE_READ);
        CHECK_RC((int)ev->result, -ECANCELED);
    }
    CHECK_EQ(ft_at(&c, N)->op, SEDA_FILE_CLOSE);
    CHECK_EQ(ft_at(&c, N)->result, 0);
    ft_wait(&fifo_c, 1);
    seda_file_t *ff = ft_at(&fifo_c, 0)->file;
    CHECK(ff);
    ft_close(ff);
    close(w);
    ft_collector_fini(&fifo_c);
    ft_collector_fini(&c);

    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.canceled, N);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_stage_release(b);
    seda_runtime_destroy(rt);
    unlink(fifo);
}

/* Requests in the kernel when the close comes: done or cancelled. */
static void close_in_flight(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/data", dir);
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    for (int round = 0; round < 4; round++) {
        seda_file_t *f = open_direct(fs, path);
        ft_collector_t c;
        ft_collector_init(&c);
        for (int i = 0; i < N; i++)
            CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &c.sink, NULL));
        CHECK_OK(seda_file_close(f, &c.sink, NULL));
        ft_wait(&c, N + 1);
        for (int i = 0; i < N; i++)
            check_read(ft_at(&c, (size_t)i), 1);
        CHECK_EQ(ft_at(&c, N)->op, SEDA_FILE_CLOSE);
        ft_collector_fini(&c);
    }
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* Runtime shutdown while requests are in flight. */
static void shutdown_in_flight(int engine, const char *dir, int mode)
{
    char path[256];
    snprintf(path, sizeof path, "%s/data", dir);
    seda_runtime_t *rt = ft_runtime(2);
    ft_collector_t c;
    ft_collector_init_stage(&c, rt, "sink", 4096);
    seda_file_stage_options_t o = { .undeliverable = ft_undeliverable, .undeliverable_ctx = &c };
    seda_file_stage_t *fs = ft_stage(rt, engine, &o);
    seda_file_t *f = open_direct(fs, path);
    for (int i = 0; i < N; i++)
        CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &c.sink, NULL));
    CHECK_OK(seda_runtime_shutdown(rt, mode, -1));
    CHECK_RC(seda_file_read(f, 0, NULL, LEN, &c.sink, NULL), -EPIPE);
    if (mode == SEDA_SHUTDOWN_DRAIN) {
        /* Drained: every completion went through the sink's handler. */
        CHECK_EQ(ft_count(&c), N);
        for (int i = 0; i < N; i++)
            check_read(ft_at(&c, (size_t)i), 0);
    }
    seda_file_stage_destroy(fs); /* waits for what the kernel still holds */
    ft_wait_n(&c, N, 1);
    pthread_mutex_lock(&c.lock);
    CHECK_EQ(c.n + c.dropped + c.undelivered, N);
    if (mode == SEDA_SHUTDOWN_DRAIN)
        CHECK_EQ(c.dropped + c.undelivered, 0);
    pthread_mutex_unlock(&c.lock);
    for (size_t i = 0; i < ft_count(&c); i++)
        check_read(ft_at(&c, i), 1);
    ft_collector_fini(&c);
    seda_runtime_destroy(rt);
}

/* The file stage destroyed while requests are in flight, runtime running. */
static void destroy_in_flight(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/data", dir);
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    seda_file_t *f = open_direct(fs, path);
    ft_collector_t c;
    ft_collector_init(&c);
    for (int i = 0; i < N; i++)
        CHECK_OK(seda_file_read(f, (uint64_t)i * LEN, NULL, LEN, &c.sink, NULL));
    seda_file_stage_destroy(fs); /* f is closed with it */
    CHECK_EQ(ft_count(&c), N);
    for (int i = 0; i < N; i++)
        check_read(ft_at(&c, (size_t)i), 1);
    ft_collector_fini(&c); /* events outlive their stage */
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

int main(void)
{
    char dir[64], path[128];
    ft_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/data", dir);
    make_file(path);
    int fds = ft_count_fds();
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        int engine = ft_engines[i];
        if (!ft_engine_available(engine))
            continue;
        close_queued(engine, dir);
        close_in_flight(engine, dir);
        shutdown_in_flight(engine, dir, SEDA_SHUTDOWN_DRAIN);
        shutdown_in_flight(engine, dir, SEDA_SHUTDOWN_HAND_BACK);
        destroy_in_flight(engine, dir);
        CHECK_EQ(ft_count_fds(), fds);
        ran++;
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
