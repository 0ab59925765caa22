/*
 * File stage: engine choice and fallbacks, each logged.
 *
 *  - choice: the option wins; SEDA_DISK when the option is DEFAULT; an
 *    unknown SEDA_DISK is logged and ignored; the default is io_uring;
 *  - an engine the kernel refuses: io_uring_setup, then io_setup, blocked
 *    with seccomp in a child process: io_uring falls back to libaio, then to
 *    threads, and the stage still reads and writes;
 *  - O_DIRECT refused by the file system: with the fault hook on every
 *    engine, and for real on a ramfs (mounted in a private mount namespace
 *    of a child process; that part is skipped where mounting is not
 *    allowed). libaio hands the file to the thread pool, io_uring keeps it
 *    on the ring, buffered; unaligned requests then work.
 */
#include "file_test.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Writes then reads back a few unaligned bytes through f. */
static void roundtrip(seda_file_t *f, uint64_t off)
{
    ft_collector_t c;
    ft_collector_init(&c);
    static const char msg[] = "staged event-driven";
    CHECK_OK(seda_file_write(f, off, msg, sizeof msg, &c.sink, NULL));
    ft_wait(&c, 1);
    CHECK_EQ(ft_at(&c, 0)->result, sizeof msg);
    CHECK_OK(seda_file_read(f, off, NULL, sizeof msg, &c.sink, NULL));
    ft_wait(&c, 2);
    CHECK_EQ(ft_at(&c, 1)->result, sizeof msg);
    CHECK(memcmp(ft_at(&c, 1)->buf, msg, sizeof msg) == 0);
    ft_collector_fini(&c);
}

static int engine_of(seda_runtime_t *rt, int option, ft_log_t *log)
{
    seda_file_stage_options_t o = {
        .name = "choice", .engine = option, .log = ft_log_fn, .log_ctx = log
    };
    seda_file_stage_t *fs;
    CHECK_OK(seda_file_stage_create(rt, &o, &fs));
    int e = seda_file_stage_engine(fs);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.engine, e);
    seda_file_stage_destroy(fs);
    return e;
}

static void choice(void)
{
    CHECK(strcmp(seda_disk_engine_name(SEDA_DISK_LIBAIO), "libaio") == 0);
    CHECK(seda_disk_engine_name(99) == NULL);
    CHECK_EQ(seda_disk_engine_parse("io_uring"), SEDA_DISK_IO_URING);
    CHECK_EQ(seda_disk_engine_parse("threads"), SEDA_DISK_THREADS);
    CHECK_RC(seda_disk_engine_parse("aio"), -EINVAL);
    CHECK_RC(seda_disk_engine_parse(NULL), -EINVAL);

    seda_runtime_t *rt = ft_runtime(1);
    ft_log_t log = { .lock = PTHREAD_MUTEX_INITIALIZER };
    seda_file_stage_options_t bad = { .name = "bad", .queue_depth = 5000 };
    seda_file_stage_t *fs;
    CHECK_RC(seda_file_stage_create(rt, &bad, &fs), -EINVAL);
    bad.queue_depth = 0;
    bad.name = "a-name-much-longer-than-forty-bytes-is-refused";
    CHECK_RC(seda_file_stage_create(rt, &bad, &fs), -EINVAL);
    bad.name = "threads";
    bad.threads = 8;
    bad.max_threads = 4;
    CHECK_RC(seda_file_stage_create(rt, &bad, &fs), -EINVAL);

    unsetenv("SEDA_DISK");
    int uring = (seda_features() & SEDA_FEATURE_IO_URING) != 0;
    int aio = (seda_features() & SEDA_FEATURE_LIBAIO) != 0;
    CHECK_EQ(engine_of(rt, SEDA_DISK_DEFAULT, &log), uring ? SEDA_DISK_IO_URING
                                                     : aio ? SEDA_DISK_LIBAIO
                                                           : SEDA_DISK_THREADS);
    setenv("SEDA_DISK", "threads", 1);
    CHECK_EQ(engine_of(rt, SEDA_DISK_DEFAULT, &log), SEDA_DISK_THREADS);
    if (aio) {
        setenv("SEDA_DISK", "libaio", 1);
        CHECK_EQ(engine_of(rt, SEDA_DISK_DEFAULT, &log), SEDA_DISK_LIBAIO);
    }
    setenv("SEDA_DISK", "threads", 1);
    CHECK_EQ(engine_of(rt, SEDA_DISK_LIBAIO, &log), aio ? SEDA_DISK_LIBAIO : SEDA_DISK_THREADS);
    CHECK_EQ(log.warnings, 0);
    setenv("SEDA_DISK", "bogus", 1);
    engine_of(rt, SEDA_DISK_DEFAULT, &log);
    CHECK_EQ(log.warnings, 1);
    CHECK(ft_log_has(&log, "SEDA_DISK=bogus"));
    unsetenv("SEDA_DISK");

    /* Resizing the pool. */
    seda_file_stage_options_t o = {
        .name = "pool", .engine = SEDA_DISK_THREADS, .threads = 2, .max_threads = 4
    };
    CHECK_OK(seda_file_stage_create(rt, &o, &fs));
    CHECK(seda_file_stage_pool(fs) != NULL);
    CHECK_OK(seda_file_stage_set_threads(fs, 4));
    CHECK_RC(seda_file_stage_set_threads(fs, 5), -EINVAL);
    CHECK_OK(seda_file_stage_set_threads(fs, 1));
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* O_DIRECT refused (by the fault hook): buffered, logged, on the right engine. */
static void no_direct(int engine, const char *dir)
{
    seda_runtime_t *rt = ft_runtime(2);
    ft_log_t log = { .lock = PTHREAD_MUTEX_INITIALIZER };
    seda_file_stage_options_t o = { .log = ft_log_fn, .log_ctx = &log };
    seda_file_stage_t *fs = ft_stage(rt, engine, &o);
    char path[256];
    snprintf(path, sizeof path, "%s/nodirect-%d", dir, engine);
    CHECK_OK(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_FAULT_NO_DIRECT, 1, 1, EINVAL));
    int err;
    seda_file_t *f = ft_open(fs, path, O_CREAT | O_RDWR | O_DIRECT, &err);
    CHECK_RC(err, 0);
    CHECK_EQ(seda_file_is_direct(f), 0);
    CHECK_EQ(seda_file_alignment(f), 1);
    CHECK_EQ(seda_file_engine(f), engine == SEDA_DISK_LIBAIO ? SEDA_DISK_THREADS : engine);
    CHECK_EQ(log.warnings, 1);
    CHECK(ft_log_has(&log, "refuses O_DIRECT"));
    roundtrip(f, 3); /* unaligned: fine on a buffered file */
    ft_close(f);
    /* The fault hit once: the next O_DIRECT open is direct again. */
    f = ft_open(fs, path, O_RDWR | O_DIRECT, &err);
    CHECK_RC(err, 0);
    CHECK_EQ(seda_file_is_direct(f), 1);
    CHECK_EQ(seda_file_engine(f), engine);
    ft_close(f);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.direct_fallbacks, 1);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* ---- child processes ------------------------------------------------------ */

static int run_child(void (*fn)(const char *), const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        fn(dir);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Makes `nr` fail with ENOSYS in this thread and those it creates later. */
static void block_syscall(int nr)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

static void refused_engines(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/refused", dir);
    block_syscall(__NR_io_uring_setup);
    seda_runtime_t *rt = ft_runtime(1);
    ft_log_t log = { .lock = PTHREAD_MUTEX_INITIALIZER };
    seda_file_stage_options_t o = { .name = "refused", .log = ft_log_fn, .log_ctx = &log };
    seda_file_stage_t *fs;
    CHECK_OK(seda_file_stage_create(rt, &o, &fs));
    CHECK_EQ(seda_file_stage_engine(fs), SEDA_DISK_LIBAIO);
    CHECK_EQ(log.warnings, 1);
    CHECK(ft_log_has(&log, "io_uring engine is unavailable"));
    seda_file_stage_destroy(fs);

    block_syscall(__NR_io_setup);
    o.engine = SEDA_DISK_IO_URING;
    CHECK_OK(seda_file_stage_create(rt, &o, &fs));
    CHECK_EQ(seda_file_stage_engine(fs), SEDA_DISK_THREADS);
    CHECK_EQ(log.warnings, 3);
    CHECK(ft_log_has(&log, "libaio engine is unavailable"));
    int err;
    seda_file_t *f = ft_open(fs, path, O_CREAT | O_RDWR, &err);
    CHECK_RC(err, 0);
    roundtrip(f, 0);
    ft_close(f);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* A ramfs, which has no O_DIRECT, in a mount namespace of this process. */
static void ramfs(const char *dir)
{
    char mnt[256], path[300];
    snprintf(mnt, sizeof mnt, "%s/ramfs", dir);
    CHECK(mkdir(mnt, 0700) == 0);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("ramfs", mnt, "ramfs", 0, NULL) != 0) {
        fprintf(stderr, "ramfs: cannot mount here (%s); that part is skipped\n", strerror(errno));
        rmdir(mnt);
        _exit(TEST_SKIP);
    }
    for (size_t i = 0; i < FT_ENGINES; i++) {
        int engine = ft_engines[i];
        if (!ft_engine_available(engine))
            continue;
        seda_runtime_t *rt = ft_runtime(2);
        ft_log_t log = { .lock = PTHREAD_MUTEX_INITIALIZER };
        seda_file_stage_options_t o = { .log = ft_log_fn, .log_ctx = &log };
        seda_file_stage_t *fs = ft_stage(rt, engine, &o);
        snprintf(path, sizeof path, "%s/f-%d", mnt, engine);
        int err;
        /* O_EXCL: the file is created once, by the only open(2) made. */
        seda_file_t *f = ft_open(fs, path, O_CREAT | O_EXCL | O_RDWR | O_DIRECT, &err);
        CHECK_RC(err, 0);
        CHECK_EQ(seda_file_is_direct(f), 0);
        CHECK_EQ(seda_file_engine(f), engine == SEDA_DISK_LIBAIO ? SEDA_DISK_THREADS : engine);
        CHECK_EQ(log.warnings, 1);
        CHECK(ft_log_has(&log, "refuses O_DIRECT"));
        roundtrip(f, 1);
        ft_close(f);
        ft_check_quiet(fs);
        seda_file_stage_destroy(fs);
        CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
        seda_runtime_destroy(rt);
    }
    umount(mnt);
    rmdir(mnt);
}

int main(void)
{
    char dir[64];
    ft_tmpdir(dir, sizeof dir);
    /* Children first, while this process has no thread. */
    uint32_t both = SEDA_FEATURE_IO_URING | SEDA_FEATURE_LIBAIO;
    if ((seda_features() & both) == both)
        CHECK_EQ(run_child(refused_engines, dir), 0);
    int r = run_child(ramfs, dir);
    CHECK(r == 0 || r == TEST_SKIP);
    choice();
    for (size_t i = 0; i < FT_ENGINES; i++)
        if (ft_engine_available(ft_engines[i]))
            no_direct(ft_engines[i], dir);
    ft_rmdir(dir);
    return 0;
}
