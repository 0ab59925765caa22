/*
 * Disk benchmark kernel (seda-bench disk): Seda's file stage on each engine,
 * and fio on the matching job, over the same file in the same run.
 *
 * Workloads, all O_DIRECT: 4 KiB random reads and 128 KiB sequential reads
 * over a data file of `file_bytes` (created once, reused: each 4 KiB block
 * starts with a header naming it, checked on every read), and 4 KiB random
 * writes over a second file (`<path>.write`, 256 MiB or the data file's size
 * if smaller, preallocated), each
 * block written at most once (a permutation), then fdatasync through the
 * stage, then every written block read back and compared byte for byte.
 *
 * Seda side: a closed loop at queue depth QD. One client stage on the shared
 * threads issues QD requests, and for each completion it receives (on its
 * sink) records the latency (from acceptance to the client's handler, so the
 * delivery hop is included, as fio's "lat" includes its reaping), checks the
 * bytes, and issues the next one until time is up. The threads engine gets
 * QD pool threads, as fio's psync gets QD jobs.
 *
 * fio side: the same job (ioengine io_uring / libaio / psync with numjobs =
 * QD and iodepth 1), run with posix_spawn, JSON output parsed for IOPS,
 * bandwidth and total-latency percentiles (lat_percentiles=1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seda/file.h"
#include "seda/runtime.h"
#include "seda_bench.h"

extern char **environ;

#define BLOCK 4096
#define SEQ_BLOCK (128 * 1024)
#define WRITE_FILE_MAX ((uint64_t)256 << 20)
#define MAGIC 0x5eda0d15cb10c000ull

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1du;
}

/* ---- latency histogram: log-linear, 64 sub-buckets per power of two ------- */

#define SUB 64
#define HBUCKETS (SUB * 40)

struct hist {
    uint64_t count[HBUCKETS];
    uint64_t n;
};

static unsigned hidx(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v >= 2^6 */
    unsigned m = (unsigned)(v >> (e - 6)) & (SUB - 1);
    unsigned i = (e - 5) * SUB + m;
    return i < HBUCKETS ? i : HBUCKETS - 1;
}

static double hvalue(unsigned i)
{
    if (i < SUB)
        return i;
    unsigned e = i / SUB + 5, m = i % SUB;
    double lo = (double)((uint64_t)(SUB + m) << (e - 6)), hi = (double)((uint64_t)(SUB + m + 1) << (e - 6));
    return (lo + hi) / 2;
}

static double hpct(const struct hist *h, double p)
{
    if (!h->n)
        return 0;
    double exact = p / 100.0 * (double)h->n;
    uint64_t want = (uint64_t)exact, seen = 0;
    if ((double)want < exact)
        want++; /* the ceiling */
    for (unsigned i = 0; i < HBUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hvalue(i);
    }
    return hvalue(HBUCKETS - 1);
}

/* ---- the data files ------------------------------------------------------- */

/* The write file's size: a power of two of blocks (the permutation of
 * blocks needs one), the data file's size at most, 256 MiB at most. */
static uint64_t write_file_bytes(uint64_t file_bytes)
{
    uint64_t b = WRITE_FILE_MAX;
    while (b > file_bytes)
        b >>= 1;
    return b;
}

static void header_fill(void *block, uint64_t index)
{
    uint64_t h[2] = { MAGIC ^ index, index };
    memcpy(block, h, sizeof h);
}

static bool header_ok(const void *block, uint64_t index)
{
    uint64_t h[2];
    memcpy(h, block, sizeof h);
    return h[0] == (MAGIC ^ index) && h[1] == index;
}

/* The content of write-file block b in run `seed`: every word differs from
 * the same word of any other block or run, but by a 64-bit coincidence (a
 * key mixed from b and seed, plus the word's index times an odd constant).
 * The words do not depend on one another, so the compiler vectorizes the
 * fill: it runs in the client's handler before each write, on the thread
 * that then submits the next batch, where a chained generator (xorshift per
 * word) cost ~3 us a block on this VM (fio fills its buffers once). */
static void write_pattern(void *block, uint64_t b, uint64_t seed)
{
    uint64_t s = (b + 1) * 0x9e3779b97f4a7c15u ^ seed, *w = block;
    uint64_t key = rnd(&s);
    for (size_t i = 0; i < BLOCK / 8; i++)
        w[i] = key + i * 0xbf58476d1ce4e5b9u;
}

static int check_block_file(int fd, uint64_t bytes)
{
    void *b;
    if (posix_memalign(&b, BLOCK, BLOCK))
        return -ENOMEM;
    bool ok = pread(fd, b, BLOCK, 0) == BLOCK && header_ok(b, 0) &&
              pread(fd, b, BLOCK, (off_t)(bytes - BLOCK)) == BLOCK && header_ok(b, bytes / BLOCK - 1);
    free(b);
    return ok;
}

int seda_bench_disk_prepare(const char *path, uint64_t bytes, int *created)
{
    if (!path || bytes < SEQ_BLOCK || bytes % SEQ_BLOCK)
        return -EINVAL;
    *created = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= bytes && check_block_file(fd, bytes) == 1)
        goto write_file;
    *created = 1;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf;
    if (posix_memalign((void **)&buf, BLOCK, CHUNK)) {
        close(fd);
        return -ENOMEM;
    }
    memset(buf, 0x5a, CHUNK);
    for (uint64_t off = 0; off < bytes && r == 0; off += CHUNK) {
        size_t len = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
        for (size_t b = 0; b < len; b += BLOCK)
            header_fill(buf + b, (off + b) / BLOCK);
        ssize_t w = pwrite(fd, buf, len, (off_t)off);
        if (w != (ssize_t)len)
            r = w < 0 ? -errno : -EIO;
    }
    free(buf);
    if (r == 0 && fsync(fd) != 0)
        r = -errno;
write_file:
    close(fd);
    if (r < 0)
        return r;
    /* The write workload's file: preallocated, so that writes do not
     * allocate blocks (libaio would block on that). */
    char wpath[4096];
    snprintf(wpath, sizeof wpath, "%s.write", path);
    fd = open(wpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    r = posix_fallocate(fd, 0, (off_t)write_file_bytes(bytes));
    close(fd);
    return -r;
}

/* ---- the Seda side ------------------------------------------------------- */

struct client {
    const seda_bench_disk_config_t *cfg;
    seda_file_stage_t *fs;
    seda_file_t *f;
    seda_file_sink_t sink;
    void **bufs;           /* one per slot (queue depth) */
    uint64_t blocks;       /* in the file */
    uint64_t rng;
    uint64_t next_seq;     /* sequential: the next offset */
    uint64_t next_write;   /* random write: the next permutation index */
    uint64_t perm_mul, perm_add; /* block = (i * mul + add) mod blocks (blocks a power of two) */
    uint8_t *written;      /* random write: blocks written (a bitmap) */
    struct hist lat;
    uint64_t ops, bytes, bad;
    int64_t first_ns, last_ns;
    _Atomic bool stop;
    _Atomic uint32_t in_flight;
    _Atomic int error;
    pthread_mutex_t lock;
    pthread_cond_t idle;
};

/* Issues the next request of slot s (on the client's handler, or at start). */
static int issue(struct client *c, uintptr_t s)
{
    void *buf = c->bufs[s];
    uint64_t off;
    switch (c->cfg->workload) {
    case SEDA_BENCH_DISK_SEQREAD_128K:
        off = c->next_seq;
        c->next_seq = (c->next_seq + SEQ_BLOCK) % (c->blocks * BLOCK);
        return seda_file_read(c->f, off, buf, SEQ_BLOCK, &c->sink, (void *)s);
    case SEDA_BENCH_DISK_RANDWRITE_4K: {
        if (c->next_write >= c->blocks)
            return -ENOSPC; /* every block written once */
        uint64_t b = (c->next_write++ * c->perm_mul + c->perm_add) & (c->blocks - 1);
        write_pattern(buf, b, c->cfg->seed);
        c->written[b / 8] |= (uint8_t)(1u << (b % 8));
        return seda_file_write(c->f, b * BLOCK, buf, BLOCK, &c->sink, (void *)s);
    }
    default:
        off = (rnd(&c->rng) % c->blocks) * BLOCK;
        return seda_file_read(c->f, off, buf, BLOCK, &c->sink, (void *)s);
    }
}

static void slot_done(struct client *c)
{
    if (atomic_fetch_sub(&c->in_flight, 1) == 1) {
        pthread_mutex_lock(&c->lock);
        pthread_cond_broadcast(&c->idle);
        pthread_mutex_unlock(&c->lock);
    }
}

static char start_token; /* the client's first event: issue QD requests */

/* The client stage's handler: concurrency 1, so its fields need no lock
 * (every request is issued from here, the first ones included). */
static int client_handler(void *ctx, void **events, size_t count)
{
    struct client *c = ctx;
    int64_t now = now_ns();
    for (size_t i = 0; i < count; i++) {
        if (events[i] == &start_token) {
            c->first_ns = now;
            for (uint32_t s = 0; s < c->cfg->queue_depth; s++)
                if (issue(c, s) != 0)
                    slot_done(c);
            continue;
        }
        seda_file_event_t *ev = events[i];
        uintptr_t s = (uintptr_t)ev->user;
        if (ev->result != (int64_t)ev->len) {
            atomic_store(&c->error, ev->result < 0 ? (int)ev->result : -EIO);
        } else {
            uint64_t lat = (uint64_t)(now - ev->accepted_ns);
            c->lat.count[hidx(lat)]++;
            c->lat.n++;
            c->ops++;
            c->bytes += ev->len;
            c->last_ns = now;
            if (ev->op == SEDA_FILE_READ)
                for (size_t b = 0; b < ev->len; b += BLOCK)
                    if (!header_ok((unsigned char *)ev->buf + b, (ev->offset + b) / BLOCK))
                        c->bad++;
        }
        seda_file_event_release(ev);
        if (atomic_load_explicit(&c->stop, memory_order_relaxed) || atomic_load(&c->error) ||
            issue(c, s) != 0)
            slot_done(c);
    }
    return 0;
}

static void client_drop(void *ctx, void *event)
{
    struct client *c = ctx;
    if (event == &start_token) {
        for (uint32_t s = 0; s < c->cfg->queue_depth; s++)
            slot_done(c);
        return;
    }
    seda_file_event_release(event);
    slot_done(c);
}

/* Waits for one completion on a private collector (open, sync, close). */
struct one {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    seda_file_event_t *ev;
};

static void one_deliver(void *ctx, seda_file_event_t *ev)
{
    struct one *o = ctx;
    pthread_mutex_lock(&o->lock);
    o->ev = ev;
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

static int64_t one_wait(struct one *o, seda_file_t **file)
{
    pthread_mutex_lock(&o->lock);
    while (!o->ev)
        pthread_cond_wait(&o->cond, &o->lock);
    pthread_mutex_unlock(&o->lock);
    int64_t r = o->ev->result;
    if (file)
        *file = o->ev->file;
    seda_file_event_release(o->ev);
    o->ev = NULL;
    return r;
}

static void quiet_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level >= SEDA_FILE_LOG_WARNING)
        fprintf(stderr, "seda-bench disk: %s\n", msg);
}

/* Reads the write file back and compares every written block. */
static int verify_writes(const char *path, struct client *c, uint64_t *checked)
{
    enum { CHUNK = 1 << 20 };
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unsigned char *buf, *want;
    if (posix_memalign((void **)&buf, BLOCK, CHUNK) || posix_memalign((void **)&want, BLOCK, BLOCK)) {
        close(fd);
        return -ENOMEM;
    }
    int r = 1;
    *checked = 0;
    for (uint64_t off = 0; off < c->blocks * BLOCK && r == 1; off += CHUNK) {
        if (pread(fd, buf, CHUNK, (off_t)off) != CHUNK) {
            r = -EIO;
            break;
        }
        for (uint64_t b = off / BLOCK; b < (off + CHUNK) / BLOCK; b++) {
            if (!(c->written[b / 8] & (1u << (b % 8))))
                continue;
            write_pattern(want, b, c->cfg->seed);
            if (memcmp(buf + (b * BLOCK - off), want, BLOCK) != 0) {
                r = 0;
                break;
            }
            (*checked)++;
        }
    }
    free(buf);
    free(want);
    close(fd);
    return r;
}

int seda_bench_disk_seda(const seda_bench_disk_config_t *cfg, seda_bench_disk_result_t *out)
{
    if (!cfg || !out || !cfg->path || cfg->queue_depth == 0 || cfg->queue_depth > 1024 || cfg->seconds <= 0)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    bool writing = cfg->workload == SEDA_BENCH_DISK_RANDWRITE_4K;
    char wpath[4096];
    snprintf(wpath, sizeof wpath, "%s.write", cfg->path);
    const char *path = writing ? wpath : cfg->path;
    uint64_t file_bytes = writing ? write_file_bytes(cfg->file_bytes) : cfg->file_bytes;

    seda_runtime_options_t ro = { .cpu_threads = cfg->cpu_threads };
    seda_runtime_t *rt;
    int r = seda_runtime_create(&rt, &ro);
    if (r < 0)
        return r;
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        seda_runtime_destroy(rt);
        return -ENOMEM;
    }
    c->cfg = cfg;
    c->blocks = file_bytes / BLOCK;
    c->rng = 0x5eda ^ cfg->seed;
    c->perm_mul = (rnd(&c->rng) | 1); /* odd: a bijection modulo a power of two */
    c->perm_add = rnd(&c->rng);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->idle, NULL);
    seda_file_stage_options_t fo = {
        .name = "disk",
        .engine = cfg->engine,
        .register_buffers = cfg->register_buffers,
        .threads = cfg->engine == SEDA_DISK_THREADS ? cfg->queue_depth : 1,
        .max_threads = cfg->queue_depth > 64 ? cfg->queue_depth : 64,
        .buffer_pool_bytes = (size_t)cfg->queue_depth * SEQ_BLOCK + ((size_t)1 << 20),
        .log = quiet_log,
    };
    seda_stage_t *client = NULL;
    struct one o = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
    seda_file_sink_t one_sink = { .deliver = one_deliver, .ctx = &o };
    r = seda_file_stage_create(rt, &fo, &c->fs);
    if (r < 0)
        goto out;
    if (seda_file_stage_engine(c->fs) != cfg->engine) {
        r = -ENOTSUP;
        goto out;
    }
    seda_stage_options_t so = {
        .name = "client", .handler = client_handler, .drop = client_drop, .ctx = c,
        .queue_capacity = cfg->queue_depth * 2,
    };
    r = seda_stage_create(rt, &so, &client);
    if (r < 0)
        goto out;
    c->sink.stage = client;
    c->bufs = calloc(cfg->queue_depth, sizeof *c->bufs);
    c->written = writing ? calloc(c->blocks / 8 + 1, 1) : NULL;
    if (!c->bufs || (writing && !c->written)) {
        r = -ENOMEM;
        goto out;
    }
    for (uint32_t s = 0; s < cfg->queue_depth; s++)
        if (!(c->bufs[s] = seda_file_buffer_alloc(c->fs, SEQ_BLOCK))) {
            r = -ENOMEM;
            goto out;
        }
    r = seda_file_open(c->fs, path, (writing ? O_RDWR : O_RDONLY) | O_DIRECT, 0, &one_sink, NULL);
    if (r < 0 || (r = (int)one_wait(&o, &c->f)) < 0)
        goto out;

    /* The run: QD requests, then one per completion until time is up. */
    atomic_store(&c->in_flight, cfg->queue_depth);
    if ((r = seda_stage_enqueue(client, &start_token)) < 0)
        goto out;
    struct timespec ts = { .tv_sec = (time_t)cfg->seconds,
                           .tv_nsec = (long)((cfg->seconds - (double)(time_t)cfg->seconds) * 1e9) };
    nanosleep(&ts, NULL);
    atomic_store(&c->stop, true);
    pthread_mutex_lock(&c->lock);
    while (atomic_load(&c->in_flight) > 0)
        pthread_cond_wait(&c->idle, &c->lock);
    pthread_mutex_unlock(&c->lock);
    r = atomic_load(&c->error);

    if (r == 0 && writing) { /* durable, then checked */
        r = seda_file_sync(c->f, 1, &one_sink, NULL);
        if (r == 0)
            r = (int)one_wait(&o, NULL);
    }
    seda_file_stage_stats_t st;
    seda_file_stage_stats(c->fs, &st);
    out->submit_calls = st.submit_calls;
    out->reap_calls = st.reap_calls;
    if (seda_file_close(c->f, &one_sink, NULL) == 0)
        one_wait(&o, NULL);
    if (r < 0)
        goto out;
    double secs = (double)(c->last_ns - c->first_ns) / 1e9;
    out->ops = c->ops;
    out->iops = secs > 0 ? (double)c->ops / secs : 0;
    out->mb_per_s = secs > 0 ? (double)c->bytes / secs / 1e6 : 0;
    out->p50_us = hpct(&c->lat, 50) / 1e3;
    out->p99_us = hpct(&c->lat, 99) / 1e3;
    out->verified = c->bad == 0;
    if (writing) {
        r = verify_writes(path, c, &out->verified_blocks);
        out->verified = r == 1 && out->verified_blocks == c->ops;
        r = r < 0 ? r : 0;
    }
out:
    if (client)
        seda_stage_destroy(client, SEDA_SHUTDOWN_HAND_BACK);
    seda_runtime_shutdown(rt, SEDA_SHUTDOWN_HAND_BACK, -1);
    if (c->bufs)
        for (uint32_t s = 0; s < cfg->queue_depth; s++)
            seda_file_buffer_free(c->fs, c->bufs[s]);
    seda_file_stage_destroy(c->fs);
    seda_stage_release(client);
    seda_runtime_destroy(rt);
    free(c->bufs);
    free(c->written);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->idle);
    free(c);
    return r;
}

/* ---- the fio side --------------------------------------------------------- */

/* The number after `"key" : ` searched from `from` up to `end`. */
static bool json_number(const char *from, const char *end, const char *key, double *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\" : ", key);
    const char *p = strstr(from, pat);
    if (!p || p >= end)
        return false;
    *out = strtod(p + strlen(pat), NULL);
    return true;
}

int seda_bench_disk_fio(const seda_bench_disk_config_t *cfg, const char *fio, seda_bench_disk_result_t *out)
{
    if (!cfg || !out || !cfg->path || cfg->queue_depth == 0 || cfg->seconds <= 0)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    bool writing = cfg->workload == SEDA_BENCH_DISK_RANDWRITE_4K;
    bool psync = cfg->engine == SEDA_DISK_THREADS;
    const char *engine = cfg->engine == SEDA_DISK_IO_URING ? "io_uring"
                         : cfg->engine == SEDA_DISK_LIBAIO ? "libaio" : "psync";
    char a_file[4200], a_rw[32], a_bs[32], a_engine[32], a_depth[32], a_jobs[32], a_time[48], a_size[48];
    snprintf(a_file, sizeof a_file, "--filename=%s%s", cfg->path, writing ? ".write" : "");
    snprintf(a_rw, sizeof a_rw, "--rw=%s",
             writing ? "randwrite" : cfg->workload == SEDA_BENCH_DISK_SEQREAD_128K ? "read" : "randread");
    snprintf(a_bs, sizeof a_bs, "--bs=%s", cfg->workload == SEDA_BENCH_DISK_SEQREAD_128K ? "128k" : "4k");
    snprintf(a_engine, sizeof a_engine, "--ioengine=%s", engine);
    snprintf(a_depth, sizeof a_depth, "--iodepth=%u", psync ? 1 : cfg->queue_depth);
    snprintf(a_jobs, sizeof a_jobs, "--numjobs=%u", psync ? cfg->queue_depth : 1);
    snprintf(a_time, sizeof a_time, "--runtime=%lldms", (long long)(cfg->seconds * 1000));
    snprintf(a_size, sizeof a_size, "--size=%llu",
             (unsigned long long)(writing ? write_file_bytes(cfg->file_bytes) : cfg->file_bytes));
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)fio;
    argv[n++] = "--name=seda-bench";
    argv[n++] = a_file;
    argv[n++] = a_rw;
    argv[n++] = a_bs;
    argv[n++] = a_engine;
    argv[n++] = a_depth;
    argv[n++] = a_jobs;
    argv[n++] = a_time;
    argv[n++] = a_size;
    argv[n++] = "--direct=1";
    argv[n++] = "--thread";
    argv[n++] = "--group_reporting";
    argv[n++] = "--time_based";
    argv[n++] = "--lat_percentiles=1";
    argv[n++] = "--randrepeat=0";
    argv[n++] = "--output-format=json";
    if (writing)
        argv[n++] = "--end_fsync=1";
    if (cfg->register_buffers > 0 && cfg->engine == SEDA_DISK_IO_URING)
        argv[n++] = "--fixedbufs=1";
    argv[n] = NULL;

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    pid_t pid;
    int r = posix_spawnp(&pid, fio, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (r != 0) {
        close(pipefd[0]);
        return -r;
    }
    size_t cap = 1 << 16, len = 0;
    char *json = malloc(cap);
    for (ssize_t k; json && (k = read(pipefd[0], json + len, cap - len - 1)) != 0;) {
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)k;
        if (cap - len < 4096) {
            char *bigger = realloc(json, cap *= 2);
            if (!bigger)
                free(json);
            json = bigger;
        }
    }
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (!json)
        return -ENOMEM;
    json[len] = 0;
    r = -EPROTO;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        const char *dir = strstr(json, writing ? "\"write\" : {" : "\"read\" : {");
        const char *end = dir ? strstr(dir, writing ? "\"trim\" : {" : "\"write\" : {") : NULL;
        if (!end)
            end = json + len;
        const char *lat = dir ? strstr(dir, "\"lat_ns\" : {") : NULL;
        double iops, bw, p50, p99;
        if (dir && lat && lat < end && json_number(dir, end, "iops", &iops) && json_number(dir, end, "bw_bytes", &bw) &&
            json_number(lat, end, "50.000000", &p50) && json_number(lat, end, "99.000000", &p99)) {
            out->iops = iops;
            out->mb_per_s = bw / 1e6;
            out->p50_us = p50 / 1e3;
            out->p99_us = p99 / 1e3;
            out->ops = (uint64_t)(iops * cfg->seconds);
            out->verified = 1;
            r = 0;
        }
    }
    free(json);
    return r;
}
