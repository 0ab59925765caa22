/*
 * File stage: errors are events, on every engine. Real ones from the kernel
 * (ENOENT, EACCES, EISDIR, EEXIST, EBADF, end of file), refusals by the call
 * itself (bad arguments, misaligned O_DIRECT requests, a closing file), and
 * injected ones (EIO and ENOSPC on write, EIO on read and fdatasync, an open
 * failure) through the engine layer's fault hook. The stage keeps working
 * after each, and nothing leaks.
 *
 * EACCES as root: the test drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
 * from its effective set first (before any thread exists), so that file
 * permissions apply to it.
 */
#include "file_test.h"

#include <linux/capability.h>
#include <sys/syscall.h>

static void drop_dac_override(void)
{
    if (geteuid() != 0)
        return;
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    CHECK(syscall(SYS_capget, &h, d) == 0);
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    CHECK(syscall(SYS_capset, &h, d) == 0);
}

/* Makes one request and waits for its completion. */
#define ONE(c, request)                 \
    ({                                  \
        size_t one_base_ = ft_count(c); \
        CHECK_OK(request);              \
        ft_wait((c), one_base_ + 1);    \
        ft_at((c), one_base_);          \
    })

static int64_t open_result(seda_file_stage_t *fs, const char *path, int flags)
{
    int err;
    seda_file_t *f = ft_open(fs, path, flags, &err);
    if (f)
        ft_close(f);
    return err;
}

static void body(int engine, const char *dir, ft_log_t *log)
{
    int fds = ft_count_fds();
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_options_t o = { .log = ft_log_fn, .log_ctx = log };
    seda_file_stage_t *fs = ft_stage(rt, engine, &o);
    char path[256], secret[256], missing[256];
    snprintf(path, sizeof path, "%s/data-%d", dir, engine);
    snprintf(secret, sizeof secret, "%s/secret", dir);
    snprintf(missing, sizeof missing, "%s/no/such/file", dir);

    /* Open errors. */
    CHECK_RC((int)open_result(fs, missing, O_RDONLY), -ENOENT);
    CHECK_RC((int)open_result(fs, secret, O_RDONLY), -EACCES);
    CHECK_RC((int)open_result(fs, dir, O_RDWR), -EISDIR);
    CHECK_RC((int)open_result(fs, path, O_CREAT | O_RDWR | O_TRUNC), 0);
    CHECK_RC((int)open_result(fs, path, O_CREAT | O_EXCL | O_RDWR), -EEXIST);

    ft_collector_t c;
    ft_collector_init(&c);
    /* Refused by the call: nothing is delivered. */
    CHECK_RC(seda_file_open(fs, path, O_RDWR | O_APPEND, 0, &c.sink, NULL), -EINVAL);
    CHECK_RC(seda_file_open(fs, NULL, O_RDONLY, 0, &c.sink, NULL), -EINVAL);
    seda_file_sink_t nowhere = { 0 };
    CHECK_RC(seda_file_open(fs, path, O_RDONLY, 0, &nowhere, NULL), -EINVAL);

    /* Reading a directory. */
    int err;
    seda_file_t *d = ft_open(fs, dir, O_RDONLY, &err);
    CHECK_RC(err, 0);
    CHECK_RC((int)ONE(&c, seda_file_read(d, 0, NULL, 4096, &c.sink, NULL))->result, -EISDIR);
    ft_close(d);

    /* A file opened for writing only cannot be read. */
    seda_file_t *wo = ft_open(fs, path, O_WRONLY, &err);
    CHECK_RC(err, 0);
    CHECK_RC((int)ONE(&c, seda_file_read(wo, 0, NULL, 4096, &c.sink, NULL))->result, -EBADF);
    ft_close(wo);

    /* An empty file reads as end of file at once. */
    seda_file_t *f = ft_open(fs, path, O_RDWR | O_DIRECT, &err);
    CHECK_RC(err, 0);
    CHECK(seda_file_is_direct(f));
    uint32_t al = seda_file_alignment(f);
    CHECK_EQ(ONE(&c, seda_file_read(f, 0, NULL, al, &c.sink, NULL))->result, 0);

    /* Bad arguments and misaligned direct requests are refused, logged once. */
    size_t delivered = ft_count(&c);
    unsigned char *buf = seda_file_buffer_alloc(fs, 8192);
    CHECK(buf);
    memset(buf, 0xab, 8192);
    CHECK_RC(seda_file_read(f, 0, buf, 0, &c.sink, NULL), -EINVAL);
    CHECK_RC(seda_file_write(f, 0, NULL, al, &c.sink, NULL), -EINVAL);
    CHECK_RC(seda_file_read(f, 0, buf, (size_t)1 << 31, &c.sink, NULL), -EINVAL);
    CHECK_RC(seda_file_write(f, (uint64_t)INT64_MAX, buf, al, &c.sink, NULL), -EINVAL);
    int warnings = log->warnings;
    CHECK_RC(seda_file_write(f, 1, buf, al, &c.sink, NULL), -EINVAL);     /* offset */
    CHECK_RC(seda_file_write(f, 0, buf + 1, al, &c.sink, NULL), -EINVAL); /* buffer */
    CHECK_RC(seda_file_write(f, 0, buf, al + 1, &c.sink, NULL), -EINVAL); /* length */
    CHECK(ft_log_has(log, "not aligned") || ft_log_has(log, "must be multiples"));
    CHECK(log->warnings <= warnings + 1);
    CHECK_EQ(ft_count(&c), delivered); /* refused: nothing delivered */

    /* Injected: the 3rd write from now fails with EIO, the others land. */
    CHECK_OK(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_WRITE, 3, 1, EIO));
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(ONE(&c, seda_file_write(f, (uint64_t)i * al, buf, al, &c.sink, NULL))->result,
                 i == 2 ? -EIO : (int64_t)al);
    }
    /* ENOSPC on two writes in a row, among many in flight: exactly two fail. */
    CHECK_OK(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_WRITE, 10, 2, ENOSPC));
    size_t base = ft_count(&c);
    for (int i = 0; i < 32; i++)
        CHECK_OK(seda_file_write(f, (uint64_t)i * al, buf, al, &c.sink, NULL));
    ft_wait(&c, base + 32);
    int nospc = 0;
    for (size_t i = base; i < base + 32; i++) {
        int64_t res = ft_at(&c, i)->result;
        CHECK(res == (int64_t)al || res == -ENOSPC);
        nospc += res == -ENOSPC;
    }
    CHECK_EQ(nospc, 2);
    /* EIO on a read and on fdatasync. */
    CHECK_OK(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_READ, 1, 1, EIO));
    CHECK_RC((int)ONE(&c, seda_file_read(f, 0, NULL, al, &c.sink, NULL))->result, -EIO);
    seda_file_event_t *ev = ONE(&c, seda_file_read(f, 0, NULL, al, &c.sink, NULL));
    CHECK_EQ(ev->result, al);
    CHECK(memcmp(ev->buf, buf, al) == 0);
    CHECK_OK(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_FDATASYNC, 1, 1, EIO));
    CHECK_RC((int)ONE(&c, seda_file_sync(f, 1, &c.sink, NULL))->result, -EIO);
    CHECK_RC((int)ONE(&c, seda_file_sync(f, 1, &c.sink, NULL))->result, 0);
    /* An open that fails where it would reach the kernel. */
    CHECK_OK(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_OPEN, 1, 1, EMFILE));
    CHECK_RC((int)open_result(fs, path, O_RDONLY), -EMFILE);
    CHECK_RC((int)open_result(fs, path, O_RDONLY), 0);
    CHECK_RC(seda_file_stage_inject_fault(fs, 1u << SEDA_FILE_READ, 0, 1, EIO), -EINVAL);
    CHECK_OK(seda_file_stage_inject_fault(fs, 0, 0, 0, 0));

    /* A closing file refuses requests; a second close too. */
    size_t before_close = ft_count(&c);
    CHECK_OK(seda_file_close(f, &c.sink, NULL));
    CHECK_RC(seda_file_read(f, 0, NULL, al, &c.sink, NULL), -EBADF);
    CHECK_RC(seda_file_sync(f, 0, &c.sink, NULL), -EBADF);
    CHECK_RC(seda_file_close(f, &c.sink, NULL), -EBADF);
    ft_wait(&c, before_close + 1);
    ev = ft_at(&c, before_close);
    CHECK_EQ(ev->op, SEDA_FILE_CLOSE);
    CHECK_EQ(ev->result, 0);
    CHECK(ev->file == f);

    seda_file_buffer_free(fs, buf);
    ft_collector_fini(&c);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK(st.failed >= 12);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
    CHECK_EQ(ft_count_fds(), fds);
}

int main(void)
{
    drop_dac_override();
    char dir[64], secret[128];
    ft_tmpdir(dir, sizeof dir);
    snprintf(secret, sizeof secret, "%s/secret", dir);
    int fd = open(secret, O_CREAT | O_WRONLY, 0000);
    CHECK(fd >= 0);
    close(fd);
    ft_log_t log = { .lock = PTHREAD_MUTEX_INITIALIZER };
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        if (!ft_engine_available(ft_engines[i]))
            continue;
        body(ft_engines[i], dir, &log);
        ran++;
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
