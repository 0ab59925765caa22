/*
 * File stage: a real ENOSPC, on every engine. The test mounts a tmpfs of
 * 256 KiB in a private mount namespace of its own (skipped, exit 77, where
 * the machine does not allow it), then fills it: one write at a time until
 * the file system is full, then many in flight at once. The device filling
 * up is an event (a short write, then -ENOSPC), never a crash or a hang, and
 * the stage carries on once space is freed.
 */
#include "file_test.h"

#include <sched.h>
#include <sys/mount.h>

#define FS_BYTES (256 * 1024)
#define BLOCK 4096

static void fill(int engine, const char *mnt, unsigned char *buf_src)
{
    seda_runtime_t *rt = ft_runtime(2);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/fill-%d", mnt, engine);
    int err;
    seda_file_t *f = ft_open(fs, path, O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, &err);
    CHECK_RC(err, 0);
    void *buf = seda_file_buffer_alloc(fs, BLOCK);
    CHECK(buf);
    memcpy(buf, buf_src, BLOCK);

    /* One at a time until the file system is full. */
    ft_collector_t c;
    ft_collector_init(&c);
    uint64_t written = 0;
    int64_t last = 0;
    for (size_t i = 0; i < 2 * FS_BYTES / BLOCK; i++) {
        size_t base = ft_count(&c);
        CHECK_OK(seda_file_write(f, written, buf, BLOCK, &c.sink, NULL));
        ft_wait(&c, base + 1);
        last = ft_at(&c, base)->result;
        if (last < 0)
            break;
        CHECK(last <= BLOCK);
        written += (uint64_t)last;
        if (last < BLOCK) /* short: the next one fails */
            CHECK(written <= FS_BYTES);
    }
    CHECK_RC((int)last, -ENOSPC);
    CHECK(written > 0 && written <= FS_BYTES);

    /* Many in flight into a full file system: every one fails, none hangs. */
    size_t base = ft_count(&c);
    for (int i = 0; i < 32; i++)
        CHECK_OK(seda_file_write(f, written + (uint64_t)i * BLOCK, buf, BLOCK, &c.sink, NULL));
    ft_wait(&c, base + 32);
    for (size_t i = base; i < base + 32; i++)
        CHECK_RC((int)ft_at(&c, i)->result, -ENOSPC);

    /* Space again: the stage carries on. Truncated rather than unlinked:
     * io_uring may drop its reference to the file a moment after the
     * completion, and an unlinked file's blocks go only with the last one. */
    CHECK(truncate(path, 0) == 0);
    base = ft_count(&c);
    CHECK_OK(seda_file_write(f, 0, buf, BLOCK, &c.sink, NULL));
    ft_wait(&c, base + 1);
    CHECK_EQ(ft_at(&c, base)->result, BLOCK);
    ft_close(f);
    CHECK(truncate(path, 0) == 0);
    CHECK(unlink(path) == 0);

    ft_collector_fini(&c);
    seda_file_buffer_free(fs, buf);
    ft_check_quiet(fs);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

int main(void)
{
    char dir[64];
    ft_tmpdir(dir, sizeof dir);
    /* Before any thread: unshare(CLONE_NEWNS) refuses a threaded process. */
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700") != 0) {
        fprintf(stderr, "cannot mount a small tmpfs here (%s): skipped\n", strerror(errno));
        rmdir(dir);
        return TEST_SKIP;
    }
    unsigned char block[BLOCK];
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (unsigned char)(i * 7);
    int ran = 0;
    for (size_t i = 0; i < FT_ENGINES; i++) {
        if (!ft_engine_available(ft_engines[i]))
            continue;
        fill(ft_engines[i], dir, block);
        ran++;
    }
    CHECK(umount(dir) == 0);
    rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
