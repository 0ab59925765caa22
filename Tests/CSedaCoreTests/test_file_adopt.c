/*
 * File stage: seda_file_adopt, over every engine.
 *
 *  - a buffered descriptor opened elsewhere reads back byte for byte (several
 *    reads in flight, one past the end), writes through it land in the file;
 *    it is served by the stage's engine, except on libaio, where the pool
 *    serves it; the CLOSE closes the descriptor;
 *  - O_NONBLOCK is cleared (io_uring would fail a cold read with -EAGAIN);
 *  - an O_DIRECT descriptor stays direct on the stage's engine (libaio
 *    included) and takes aligned requests (skipped where the file system
 *    refuses O_DIRECT);
 *  - refusals leave the descriptor to the caller: -EINVAL (bad arguments,
 *    O_APPEND, O_PATH), -EBADF (not open), -EPIPE (stage destroyed);
 *  - a file adopted and never closed is closed by seda_file_stage_destroy;
 *  - nothing leaks: every descriptor is closed at the end.
 */
#include "file_test.h"

#define SIZE (3 * 4096 + 1234)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31u + seed + (i >> 8));
}

static void make_file(const char *path, const unsigned char *bytes, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, bytes, n), n);
    CHECK_OK(close(fd));
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Buffered: read back in four requests in flight at once, then write. */
static void buffered(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/buffered", dir);
    static unsigned char want[SIZE], got[SIZE + 100];
    fill(want, SIZE, (unsigned)engine);
    make_file(path, want, SIZE);

    seda_runtime_t *rt = ft_runtime(1);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_OK(fcntl(fd, F_SETFD, 0)); /* adopt sets it again */
    seda_file_t *f = NULL;
    CHECK_OK(seda_file_adopt(fs, fd, &f));
    CHECK(f != NULL);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(seda_file_is_direct(f), 0);
    CHECK_EQ(seda_file_alignment(f), 1);
    CHECK(seda_file_stage_of(f) == fs);
    CHECK_EQ(seda_file_engine(f), engine == SEDA_DISK_LIBAIO ? SEDA_DISK_THREADS : engine);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.files_open, 1);
    CHECK_EQ(st.accepted, 0); /* no OPEN request */

    ft_collector_t c;
    ft_collector_init(&c);
    const size_t chunk = 4096;
    size_t n = 0;
    for (size_t off = 0; off < SIZE + 100; off += chunk, n++) {
        size_t len = chunk;
        if (off + len > SIZE + 100)
            len = SIZE + 100 - off;
        CHECK_OK(seda_file_read(f, off, got + off, len, &c.sink, (void *)(uintptr_t)(n + 1)));
    }
    ft_wait(&c, n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        seda_file_event_t *ev = ft_at(&c, i);
        CHECK_EQ(ev->op, SEDA_FILE_READ);
        CHECK(ev->result >= 0);
        CHECK(ev->result == (int64_t)ev->len || ev->offset + (uint64_t)ev->result == SIZE);
        total += (size_t)ev->result;
    }
    CHECK_EQ(total, SIZE);
    CHECK(memcmp(got, want, SIZE) == 0);
    ft_release_all(&c);

    static const char msg[] = "adopted";
    CHECK_OK(seda_file_write(f, 10, msg, sizeof msg, &c.sink, NULL));
    ft_wait(&c, 1);
    CHECK_EQ(ft_at(&c, 0)->result, sizeof msg);
    ft_release_all(&c);
    char back[sizeof msg];
    int check = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(check >= 0);
    CHECK_EQ(pread(check, back, sizeof back, 10), sizeof back);
    CHECK(memcmp(back, msg, sizeof msg) == 0);
    CHECK_OK(close(check));

    ft_close(f); /* the CLOSE event released: f is gone, fd closed */
    CHECK(!fd_is_open(fd));
    ft_check_quiet(fs);
    ft_collector_fini(&c);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* O_NONBLOCK (a document root opens that way, so that a FIFO cannot block
 * it) is cleared: on io_uring a read of a page-cache miss on an O_NONBLOCK
 * file would complete with -EAGAIN instead of waiting for the disk. The
 * file's pages are dropped from the cache first (ext4; a tmpfs keeps them,
 * and then this only checks the flag). */
static void nonblocking(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/cold", dir);
    static unsigned char want[64 * 1024], got[64 * 1024];
    fill(want, sizeof want, 3);
    make_file(path, want, sizeof want);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_OK(fdatasync(fd));
    CHECK_OK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    seda_runtime_t *rt = ft_runtime(1);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    seda_file_t *f = NULL;
    CHECK_OK(seda_file_adopt(fs, fd, &f));
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ft_collector_t c;
    ft_collector_init(&c);
    CHECK_OK(seda_file_read(f, 0, got, sizeof got, &c.sink, NULL));
    ft_wait(&c, 1);
    CHECK_EQ(ft_at(&c, 0)->result, sizeof got);
    CHECK(memcmp(got, want, sizeof want) == 0);
    ft_release_all(&c);
    ft_close(f);
    ft_collector_fini(&c);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* O_DIRECT: served direct by the stage's engine, aligned requests only. */
static void direct(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/direct", dir);
    static unsigned char want[4 * 4096];
    fill(want, sizeof want, 7);
    make_file(path, want, sizeof want);
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        CHECK(errno == EINVAL); /* the file system refuses O_DIRECT */
        fprintf(stderr, "direct: O_DIRECT refused here, part skipped\n");
        return;
    }
    seda_runtime_t *rt = ft_runtime(1);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    seda_file_t *f = NULL;
    CHECK_OK(seda_file_adopt(fs, fd, &f));
    CHECK_EQ(seda_file_is_direct(f), 1);
    CHECK_EQ(seda_file_engine(f), engine);
    uint32_t align = seda_file_alignment(f);
    CHECK(align >= 1 && 4096 % align == 0);
    ft_collector_t c;
    ft_collector_init(&c);
    /* Unaligned: refused when made. */
    CHECK_RC(seda_file_read(f, 1, NULL, 4096, &c.sink, NULL), align > 1 ? -EINVAL : 0);
    if (align == 1) {
        ft_wait(&c, 1);
        ft_release_all(&c);
    }
    CHECK_OK(seda_file_read(f, 4096, NULL, 2 * 4096, &c.sink, NULL));
    ft_wait(&c, 1);
    seda_file_event_t *ev = ft_at(&c, 0);
    CHECK_EQ(ev->result, 2 * 4096);
    CHECK(memcmp(ev->buf, want + 4096, 2 * 4096) == 0);
    ft_release_all(&c);
    ft_close(f);
    CHECK(!fd_is_open(fd));
    ft_check_quiet(fs);
    ft_collector_fini(&c);
    seda_file_stage_destroy(fs);
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
}

/* Refusals leave the descriptor open and the caller's; destroy closes a
 * file adopted and never closed; a destroyed stage refuses. */
static void refusals_and_destroy(int engine, const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/refusals", dir);
    static const unsigned char bytes[] = "0123456789";
    make_file(path, bytes, sizeof bytes);
    seda_runtime_t *rt = ft_runtime(1);
    seda_file_stage_t *fs = ft_stage(rt, engine, NULL);
    seda_file_t *f = NULL;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_RC(seda_file_adopt(NULL, fd, &f), -EINVAL);
    CHECK_RC(seda_file_adopt(fs, fd, NULL), -EINVAL);
    CHECK_RC(seda_file_adopt(fs, -1, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK(fd_is_open(fd));
    int app = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    CHECK(app >= 0);
    CHECK_RC(seda_file_adopt(fs, app, &f), -EINVAL);
    CHECK(fd_is_open(app));
    CHECK_OK(close(app));
    int opath = open(path, O_PATH | O_CLOEXEC);
    CHECK(opath >= 0);
    CHECK_RC(seda_file_adopt(fs, opath, &f), -EINVAL);
    CHECK_OK(close(opath));
    int gone = dup(fd);
    CHECK(gone >= 0);
    CHECK_OK(close(gone));
    CHECK_RC(seda_file_adopt(fs, gone, &f), -EBADF);
    seda_file_stage_stats_t st;
    seda_file_stage_stats(fs, &st);
    CHECK_EQ(st.files_open, 0);

    /* Adopted, read once, never closed: destroy closes it. */
    CHECK_OK(seda_file_adopt(fs, fd, &f));
    ft_collector_t c;
    ft_collector_init(&c);
    CHECK_OK(seda_file_read(f, 0, NULL, sizeof bytes, &c.sink, NULL));
    ft_wait(&c, 1);
    CHECK_EQ(ft_at(&c, 0)->result, sizeof bytes);
    CHECK(memcmp(ft_at(&c, 0)->buf, bytes, sizeof bytes) == 0);
    ft_release_all(&c);
    seda_file_stage_retain(fs);
    seda_file_stage_destroy(fs);
    CHECK(!fd_is_open(fd));
    int late = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(late >= 0);
    f = NULL;
    CHECK_RC(seda_file_adopt(fs, late, &f), -EPIPE);
    CHECK(f == NULL);
    CHECK(fd_is_open(late));
    CHECK_OK(close(late));
    seda_file_stage_release(fs);
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
        buffered(engine, dir);
        nonblocking(engine, dir);
        direct(engine, dir);
        refusals_and_destroy(engine, dir);
        CHECK_EQ(ft_count_fds(), fds);
        ran++;
    }
    ft_rmdir(dir);
    return ran ? 0 : TEST_SKIP;
}
