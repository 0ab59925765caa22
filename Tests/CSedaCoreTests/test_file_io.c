/*
 * File stage: what is written reads back. On every engine, buffered and
 * O_DIRECT: many writes in flight at random offsets and sizes (more than the
 * engine's depth, so requests wait in the stage), fsync and fdatasync, then
 * many reads in flight at random offsets and sizes, into pooled and own
 * buffers, compared byte for byte with a model; reads across and past the
 * end of the file come back short; nothing leaks.
 *
 * Usage: test_file_io [writes [reads]]
 */
#include <stdbool.h>

#include "file_test.h"

#define SLOT (8 * 1024)

struct run {
    int engine, direct;
    seda_file_stage_t *fs;
    seda_file_t *f;
    unsigned char *model;
    size_t size;   /* the file's length: the end of the furthest write */
    uint32_t unit; /* offsets and lengths are multiples of it */
    uint64_t rng;
};

static void *buffer(struct run *r, size_t len, bool *pooled)
{
    /* Direct I/O needs aligned buffers: pooled. Buffered I/O takes any
     * address: an odd one from the heap. */
    if (r->direct) {
        *pooled = true;
        void *b = seda_file_buffer_alloc(r->fs, len);
        CHECK(b);
        return b;
    }
    *pooled = false;
    unsigned char *b = malloc(len + 1);
    CHECK(b);
    return b + 1;
}

static void buffer_free(struct run *r, void *b, bool pooled)
{
    if (pooled)
        seda_file_buffer_free(r->fs, b);
    else
        free((unsigned char *)b - 1);
}

static size_t rnd_len(struct run *r, size_t max)
{
    size_t units = max / r->unit;
    return (1 + ft_rnd(&r->rng) % units) * r->unit;
}

static void write_all(struct run *r, size_t writes)
{
    ft_collector_t c;
    ft_collector_init(&c);
    size_t *order = malloc(writes * sizeof *order);
    bool *pooled = calloc(writes, sizeof *pooled);
    CHECK(order && pooled);
    for (size_t i = 0; i < writes; i++)
        order[i] = i;
    for (size_t i = writes - 1; i > 0; i--) { /* random order of slots */
        size_t j = ft_rnd(&r->rng) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < writes; k++) {
        size_t slot = order[k];
        size_t len = rnd_len(r, SLOT);
        size_t shift =
            (SLOT - len) / r->unit ? (ft_rnd(&r->rng) % ((SLOT - len) / r->unit + 1)) * r->unit : 0;
        uint64_t off = slot * SLOT + shift;
        unsigned char *b = buffer(r, len, &pooled[slot]);
        for (size_t i = 0; i < len; i++)
            b[i] = (unsigned char)ft_rnd(&r->rng);
        memcpy(r->model + off, b, len);
        if (off + len > r->size)
            r->size = off + len;
        CHECK_OK(seda_file_write(r->f, off, b, len, &c.sink, (void *)slot));
    }
    ft_wait(&c, writes);
    for (size_t i = 0; i < writes; i++) {
        seda_file_event_t *ev = ft_at(&c, i);
        CHECK_EQ(ev->op, SEDA_FILE_WRITE);
        CHECK_EQ(ev->result, (int64_t)ev->len);
        CHECK_EQ(ev->flags & SEDA_FILE_EVENT_OWNS_BUFFER, 0);
        CHECK(ev->file == r->f);
        CHECK(ev->completed_ns >= ev->accepted_ns);
        buffer_free(r, ev->buf, pooled[(size_t)ev->user]);
    }
    ft_collector_fini(&c);
    free(order);
    free(pooled);

    /* Both syncs, then the file's length as the kernel sees it. */
    ft_collector_init(&c);
    CHECK_OK(seda_file_sync(r->f, 0, &c.sink, NULL));
    CHECK_OK(seda_file_sync(r->f, 1, &c.sink, NULL));
    ft_wait(&c, 2);
    for (size_t i = 0; i < 2; i++) {
        seda_file_event_t *ev = ft_at(&c, i);
        CHECK(ev->op == SEDA_FILE_FSYNC || ev->op == SEDA_FILE_FDATASYNC);
        CHECK_EQ(ev->result, 0);
    }
    ft_collector_fini(&c);
}

static void check_read(struct run *r, seda_file_event_t *ev)
{
    CHECK_EQ(ev->op, SEDA_FILE_READ);
    size_t want = ev->offset >= r->size ? 0 : r->size - ev->offset;
    if (want > ev->len)
        want = ev->len;
    if (ev->result != (int64_t)want) {
        fprintf(stderr, "read at %llu len %zu: got %lld, want %zu (size %zu)\n",
                (unsigned long long)ev->offset, ev->len, (long long)ev->result, want, r->size);
        exit(1);
    }
    if (memcmp(ev->buf, r->model + ev->offset, want) != 0) {
        fprintf(stderr, "read at %llu len %zu: bytes differ\n", (unsigned long long)ev->offset,
                ev->len);
        exit(1);
    }
}

static void read_all(struct run *r, size_t reads, size_t model_len)
{
    ft_collector_t c;
    ft_collector_init(&c);
    for (size_t k = 0; k < reads; k++) {
        size_t len = rnd_len(r, 64 * 1024);
        uint64_t off = (ft_rnd(&r->rng) % ((r->size + 16 * 1024) / r->unit)) * r->unit;
        if (off + len > model_len)
            off = (model_len - len) / r->unit * r->unit;
        /* Every other read into a pooled buffer the event owns. */
        bool pooled = false;
        void *b = (k & 1) ? NULL : buffer(r, len, &pooled);
        CHECK_OK(seda_file_read(r->f, off, b, len, &c.sink, (void *)(uintptr_t)pooled));
    }
    /* Explicit ends: across the end, at it, past it. */
    size_t end_reads = 0;
    uint64_t ends[] = { r->size - r->unit, r->size, r->size + 4 * r->unit };
    for (size_t i = 0; i < 3; i++, end_reads++)
        CHECK_OK(seda_file_read(r->f, ends[i], NULL, 4 * r->unit, &c.sink, NULL));
    ft_wait(&c, reads + end_reads);
    for (size_t i = 0; i < reads + end_reads; i++) {
        seda_file_event_t *ev = ft_at(&c, i);
        check_read(r, ev);
        if (ev->flags & SEDA_FILE_EVENT_OWNS_BUFFER) {
            CHECK_EQ((uintptr_t)ev->buf % SEDA_FILE_BUFFER_ALIGN, 0);
        } else {
            buffer_free(r, ev->buf, ev->user != NULL);
        }
        if (ev->offset == r->size - r->unit && ev->user == NULL)
            CHECK_EQ(ev->result, r->unit); /* short: across the end */
    }
    /* A pooled buffer taken out of its event outlives it. */
    seda_file_event_t *ev = NULL;
    for (size_t i = 0; !ev && i < reads + end_reads; i++)
        if (ft_at(&c, i)->flags & SEDA_FILE_EVENT_OWNS_BUFFER)
            ev = ft_at(&c, i);
    CHECK(ev);
    void *taken = seda_file_event_take_buffer(ev);
    CHECK(taken == ev->buf);
    CHECK(seda_file_event_take_buffer(ev) == NULL);
    ft_collector_fini(&c);
    seda_file_buffer_free(r->fs, taken);
}

static void body(int engine, int direct, int registered, const char *dir, size_t writes,
                 size_t reads)
{
    int fds = ft_count_fds();
    seda_runtime_t *rt = ft_runtime(2);
    /* A small depth and engine batches, so that requests wait in the stage. */
    /* Registered: a 4 MiB arena (under the usual 8 MiB RLIMIT_MEMLOCK), so
     * that some requests use fixed buffers and some, from the heap, do not. */
    seda_file_stage_options_t o = { .queue_depth = 16,
                                    .threads = 3,
                                    .register_buffers = registered ? 1 : -1,
                                    .buffer_pool_bytes = registered ? (size_t)4 << 20 : 0 };
    struct run r = { .engine = engine,
                     .direct = direct || engine == SEDA_DISK_LIBAIO,
                     .rng = 0x5eda + (uint64_t)engine };
    r.fs = ft_stage(rt, engine, &o);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(r.fs, &st);
    if (registered && !st.buffers_registered)
        fprintf(stderr, "note: the arena could not be registered here; unregistered buffers\n");
    CHECK(registered || !st.buffers_registered);
    char path[256];
    snprintf(path, sizeof path, "%s/io-%d-%d", dir, engine, direct);
    int err;
    r.f = ft_open(r.fs, path, O_CREAT | O_RDWR | O_TRUNC | (direct ? O_DIRECT : 0), &err);
    CHECK_RC(err, 0);
    CHECK_EQ(seda_file_is_direct(r.f), r.direct); /* /tmp takes O_DIRECT */
    CHECK_EQ(seda_file_engine(r.f), engine);
    r.unit = r.direct ? seda_file_alignment(r.f) : 1;
    CHECK(r.unit >= 1 && r.unit <= SLOT);
    size_t model_len = writes * SLOT + 64 * 1024 + 16 * 1024;
    r.model = calloc(1, model_len);
    CHECK(r.model);

    write_all(&r, writes);
    read_all(&r, reads, model_len);
    ft_close(r.f);

    seda_file_stage_stats(r.fs, &st);
    CHECK_EQ(st.failed, 0);
    CHECK(st.bytes_written > 0 && st.bytes_read > 0);
    if (engine != SEDA_DISK_THREADS) /* batched: fewer submissions than requests */
        CHECK(st.submit_calls > 0 && st.submit_calls < writes + reads);
    ft_check_quiet(r.fs);
    seda_file_stage_destroy(r.fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
    free(r.model);
    CHECK_EQ(ft_count_fds(), fds);
}

int main(int argc, char **argv)
{
    size_t writes = argc > 1 ? strtoul(argv[1], NULL, 10) : 128;
    size_t reads = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
    char dir[64];
    ft_tmpdir(dir, sizeof dir);
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        int engine = ft_engines[i];
        if (!ft_engine_available(engine)) {
            fprintf(stderr, "%s: not offered by this kernel, skipped\n",
                    seda_disk_engine_name(engine));
            continue;
        }
        for (int direct = 0; direct <= 1; direct++) {
            if (engine == SEDA_DISK_LIBAIO && !direct)
                continue; /* libaio is always direct */
            body(engine, direct, 0, dir, writes, reads);
            ran++;
            /* Direct I/O through the registered arena: READ/WRITE_FIXED. */
            if (engine == SEDA_DISK_IO_URING && direct)
                body(engine, direct, 1, dir, writes, reads);
        }
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
