/*
 * Helpers for the file stage tests (test_file_*.c): a collector of
 * completions (as a deliver callback or as a sink stage), the engines to run
 * every test body over, a scratch directory, and descriptor counting.
 */
#ifndef SEDA_FILE_TEST_H
#define SEDA_FILE_TEST_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "seda/file.h"
#include "test.h"

/* A hang guard, not a measurement: a wait longer than this is a bug. */
#define FT_HANG_SECONDS 60

/* ---- completions ---------------------------------------------------------- */

typedef struct ft_collector {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    seda_file_event_t **evs;
    size_t n, cap;
    size_t dropped;      /* handed to the sink stage's drop callback */
    size_t undelivered;  /* handed to the file stage's undeliverable callback */
    seda_stage_t *stage; /* the sink stage, if made */
    seda_file_sink_t sink;
} ft_collector_t;

static inline void ft_push(ft_collector_t *c, seda_file_event_t *ev)
{
    pthread_mutex_lock(&c->lock);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->evs = realloc(c->evs, c->cap * sizeof *c->evs);
        CHECK(c->evs);
    }
    c->evs[c->n++] = ev;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static inline void ft_deliver(void *ctx, seda_file_event_t *ev)
{
    ft_push(ctx, ev);
}

static inline int ft_handler(void *ctx, void **events, size_t count)
{
    for (size_t i = 0; i < count; i++)
        ft_push(ctx, events[i]);
    return 0;
}

static inline void ft_drop(void *ctx, void *event)
{
    ft_collector_t *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->dropped++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    seda_file_event_release(event);
}

static inline void ft_undeliverable(void *ctx, seda_file_event_t *ev)
{
    ft_collector_t *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->undelivered++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    seda_file_event_release(ev);
}

/* A collector fed by a deliver callback. */
static inline void ft_collector_init(ft_collector_t *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->sink.deliver = ft_deliver;
    c->sink.ctx = c;
}

/* A collector fed through a sink stage on the shared threads. */
static inline void ft_collector_init_stage(ft_collector_t *c, seda_runtime_t *rt, const char *name,
                                           size_t capacity)
{
    ft_collector_init(c);
    seda_stage_options_t so = {
        .name = name,
        .queue_capacity = capacity,
        .handler = ft_handler,
        .drop = ft_drop,
        .ctx = c,
    };
    CHECK_OK(seda_stage_create(rt, &so, &c->stage));
    c->sink.stage = c->stage;
    c->sink.deliver = NULL;
}

/* Waits until at least n completions have arrived (handler or callback),
 * plus dropped and undelivered ones when `all` is set. */
static inline size_t ft_wait_n(ft_collector_t *c, size_t n, int all)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FT_HANG_SECONDS;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        size_t have = c->n + (all ? c->dropped + c->undelivered : 0);
        if (have >= n) {
            pthread_mutex_unlock(&c->lock);
            return have;
        }
        if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT) {
            fprintf(stderr, "hang: %zu of %zu completions after %d s\n", have, n, FT_HANG_SECONDS);
            exit(1);
        }
    }
}

static inline size_t ft_wait(ft_collector_t *c, size_t n)
{
    return ft_wait_n(c, n, 0);
}

/* Completions collected so far (handler or callback). */
static inline size_t ft_count(ft_collector_t *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Takes completion i (in arrival order). */
static inline seda_file_event_t *ft_at(ft_collector_t *c, size_t i)
{
    pthread_mutex_lock(&c->lock);
    CHECK(i < c->n);
    seda_file_event_t *ev = c->evs[i];
    pthread_mutex_unlock(&c->lock);
    return ev;
}

/* Releases every collected completion and forgets them. */
static inline void ft_release_all(ft_collector_t *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        seda_file_event_release(c->evs[i]);
    c->n = 0;
    pthread_mutex_unlock(&c->lock);
}

static inline void ft_collector_fini(ft_collector_t *c)
{
    ft_release_all(c);
    if (c->stage)
        seda_stage_release(c->stage);
    free(c->evs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

/* Opens path and waits for the handle; returns it, or NULL with *err set. */
static inline seda_file_t *ft_open(seda_file_stage_t *fs, const char *path, int flags, int *err)
{
    ft_collector_t c;
    ft_collector_init(&c);
    CHECK_OK(seda_file_open(fs, path, flags, 0600, &c.sink, NULL));
    ft_wait(&c, 1);
    seda_file_event_t *ev = ft_at(&c, 0);
    CHECK_EQ(ev->op, SEDA_FILE_OPEN);
    seda_file_t *f = ev->file;
    *err = (int)ev->result;
    CHECK(ev->result == 0 ? f != NULL : f == NULL);
    ft_collector_fini(&c);
    return f;
}

/* Closes f, waits for the CLOSE, and checks its result is 0. */
static inline void ft_close(seda_file_t *f)
{
    ft_collector_t c;
    ft_collector_init(&c);
    CHECK_OK(seda_file_close(f, &c.sink, NULL));
    ft_wait(&c, 1);
    CHECK_EQ(ft_at(&c, 0)->op, SEDA_FILE_CLOSE);
    CHECK_EQ(ft_at(&c, 0)->result, 0);
    ft_collector_fini(&c);
}

/* ---- log ----------------------------------------------------------------- */

typedef struct ft_log {
    pthread_mutex_t lock;
    char text[4096];
    int warnings;
} ft_log_t;

static inline void ft_log_fn(void *ctx, int level, const char *msg)
{
    ft_log_t *l = ctx;
    pthread_mutex_lock(&l->lock);
    if (level >= SEDA_FILE_LOG_WARNING)
        l->warnings++;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "%s\n", msg);
    pthread_mutex_unlock(&l->lock);
}

static inline int ft_log_has(ft_log_t *l, const char *needle)
{
    pthread_mutex_lock(&l->lock);
    int found = strstr(l->text, needle) != NULL;
    pthread_mutex_unlock(&l->lock);
    return found;
}

/* ---- engines, files, descriptors ----------------------------------------- */

static const int ft_engines[] = { SEDA_DISK_IO_URING, SEDA_DISK_LIBAIO, SEDA_DISK_THREADS };
#define FT_ENGINES (sizeof ft_engines / sizeof ft_engines[0])

/* Whether the kernel offers the engine (the test body is skipped if not). */
static inline int ft_engine_available(int engine)
{
    uint32_t f = seda_features();
    if (engine == SEDA_DISK_IO_URING)
        return (f & SEDA_FEATURE_IO_URING) != 0;
    if (engine == SEDA_DISK_LIBAIO)
        return (f & SEDA_FEATURE_LIBAIO) != 0;
    return 1;
}

/* A file stage on `engine`, which must be the one granted. */
static inline seda_file_stage_t *ft_stage(seda_runtime_t *rt, int engine,
                                          seda_file_stage_options_t *extra)
{
    seda_file_stage_options_t o = extra ? *extra : (seda_file_stage_options_t){ 0 };
    if (!o.name)
        o.name = "disk";
    o.engine = engine;
    seda_file_stage_t *fs;
    CHECK_OK(seda_file_stage_create(rt, &o, &fs));
    CHECK_EQ(seda_file_stage_engine(fs), engine);
    return fs;
}

static inline seda_runtime_t *ft_runtime(uint32_t cpu_threads)
{
    seda_runtime_options_t ro = { .cpu_threads = cpu_threads };
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, &ro));
    return rt;
}

/* A scratch directory under /tmp (a real file system: O_DIRECT works). */
static inline void ft_tmpdir(char *out, size_t len)
{
    snprintf(out, len, "/tmp/seda-file-test-XXXXXX");
    CHECK(mkdtemp(out) != NULL);
}

static inline void ft_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
                continue;
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                ft_rmdir(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static inline int ft_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Nothing of the stage's is left: no request, completion, buffer or file. */
static inline void ft_check_quiet(seda_file_stage_t *fs)
{
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.in_kernel, 0);
    CHECK_EQ(st.events_outstanding, 0);
    CHECK_EQ(st.buffers_outstanding, 0);
    CHECK_EQ(st.files_open, 0);
    CHECK_EQ(st.accepted, st.completed);
}

static inline uint64_t ft_rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1du;
}

#endif /* SEDA_FILE_TEST_H */
