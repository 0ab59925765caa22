/*
 * File stage: buffers that travel and handles that stay, on every engine
 * (what bindings build zero-copy file objects on).
 *
 *  - seda_file_write_pooled / seda_file_read_pooled: the request takes the
 *    pooled buffer over, its completion owns it; taken back, it carries the
 *    next request; the bytes read back are those written; a refused request
 *    leaves the buffer to the caller;
 *  - seda_file_retain: a handle stays readable after its CLOSE event is
 *    released, and requests on it are refused with -EBADF; after the stage
 *    is destroyed, with -EPIPE;
 *  - a pooled buffer, a retained handle and a retained stage outlive
 *    seda_file_stage_destroy (the stage's memory and arena go with the
 *    last of them); requests then are refused with -EPIPE.
 */
#include "file_test.h"

#define N 16
#define LEN 8192

static seda_file_t *open_rw(seda_file_stage_t *fs, const char *path)
{
    int err;
    seda_file_t *f = ft_open(fs, path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, &err);
    CHECK_RC(err, 0);
    return f;
}

static void travelling_buffers(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/pooled-%d", dir, engine);
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    seda_file_t *f = open_rw(fs, path);
    ft_collector_t c;
    ft_collector_init(&c);

    /* Writes: each buffer goes with its request. */
    for (int i = 0; i < N; i++) {
        unsigned char *b = seda_file_buffer_alloc(fs, LEN);
        CHECK(b);
        memset(b, 'a' + i, LEN);
        CHECK_OK(seda_file_write_pooled(f, (uint64_t)i * LEN, b, LEN, &c.sink, NULL));
    }
    ft_wait(&c, N);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.buffers_outstanding, N); /* held by the events */
    /* Each completion owns its buffer: take it back and read into it. */
    void *bufs[N];
    for (int i = 0; i < N; i++) {
        seda_file_event_t *ev = ft_at(&c, (size_t)i);
        CHECK_EQ(ev->result, LEN);
        CHECK(ev->flags & SEDA_FILE_EVENT_OWNS_BUFFER);
        CHECK(seda_file_event_stage(ev) == fs);
        CHECK(seda_file_stage_of(ev->file) == fs);
        bufs[i] = seda_file_event_take_buffer(ev);
        CHECK(bufs[i] == ev->buf);
        CHECK(seda_file_event_take_buffer(ev) == NULL);
    }
    ft_release_all(&c);
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.buffers_outstanding, N); /* now ours */
    for (int i = 0; i < N; i++) {
        memset(bufs[i], 0, LEN);
        /* In reverse: block N-1-i into buffer i. */
        CHECK_OK(seda_file_read_pooled(f, (uint64_t)(N - 1 - i) * LEN, bufs[i], LEN, &c.sink,
                                       (void *)(uintptr_t)i));
    }
    ft_wait(&c, N);
    for (int i = 0; i < N; i++) {
        seda_file_event_t *ev = ft_at(&c, (size_t)i);
        uintptr_t k = (uintptr_t)ev->user;
        CHECK_EQ(ev->result, LEN);
        CHECK(ev->buf == bufs[k]);
        CHECK(ev->flags & SEDA_FILE_EVENT_OWNS_BUFFER);
        unsigned char *p = ev->buf;
        CHECK_EQ(p[0], 'a' + (N - 1 - (int)k));
        CHECK_EQ(p[LEN - 1], 'a' + (N - 1 - (int)k));
    }
    ft_release_all(&c); /* frees the buffers with the events */
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.buffers_outstanding, 0);

    /* Refused (misaligned on an O_DIRECT file): the caller keeps it. */
    void *b = seda_file_buffer_alloc(fs, LEN);
    CHECK(b);
    CHECK_RC(seda_file_write_pooled(f, 1, b, LEN, &c.sink, NULL), -EINVAL);
    CHECK_RC(seda_file_read_pooled(f, 0, NULL, LEN, &c.sink, NULL), -EINVAL);
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.buffers_outstanding, 1);
    seda_file_buffer_free(fs, b);
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.buffers_outstanding, 0);
    CHECK_EQ(ft_count(&c), 0);

    ft_close(f);
    ft_collector_fini(&c);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

static void retained_handles(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/retained-%d", dir, engine);
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    ft_collector_t c;
    ft_collector_init(&c);

    /* Closed: the handle outlives its CLOSE event. */
    seda_file_t *f = open_rw(fs, path);
    seda_file_retain(f);
    int direct = seda_file_is_direct(f);
    uint32_t align = seda_file_alignment(f);
    ft_close(f); /* its CLOSE event is released here */
    CHECK_EQ(seda_file_is_direct(f), direct);
    CHECK_EQ(seda_file_alignment(f), align);
    CHECK_RC(seda_file_read(f, 0, NULL, LEN, &c.sink, NULL), -EBADF);
    CHECK_RC(seda_file_close(f, &c.sink, NULL), -EBADF);
    seda_file_release(f);

    /* Never closed, stage destroyed: handle and a buffer outlive it. */
    f = open_rw(fs, path);
    seda_file_retain(f);
    unsigned char *b = seda_file_buffer_alloc(fs, LEN);
    CHECK(b);
    seda_file_stage_retain(fs);
    seda_file_stage_destroy(fs); /* closes f */
    ft_collector_t late;
    ft_collector_init(&late);
    CHECK_RC(seda_file_open(fs, path, O_RDONLY, 0, &late.sink, NULL), -EPIPE);
    CHECK_EQ(seda_file_stage_engine(fs), engine);
    seda_file_stage_release(fs);
    ft_collector_fini(&late);
    memset(b, 7, LEN); /* the arena is still there */
    CHECK_RC(seda_file_read(f, 0, NULL, LEN, &c.sink, NULL), -EPIPE);
    CHECK_RC(seda_file_write_pooled(f, 0, b, LEN, &c.sink, NULL), -EPIPE);
    CHECK_EQ(seda_file_engine(f), seda_file_engine(f));
    seda_file_buffer_free(fs, b);
    seda_file_release(f); /* the last: the stage's memory goes */
    CHECK_EQ(ft_count(&c), 0);
    ft_collector_fini(&c);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

int main(void)
{
    char dir[64];
    ft_tmpdir(dir, sizeof dir);
    int fds = ft_count_fds();
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        int engine = ft_engines[i];
        if (!ft_engine_available(engine))
            continue;
        travelling_buffers(engine, dir);
        retained_handles(engine, dir);
        CHECK_EQ(ft_count_fds(), fds);
        ran++;
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
