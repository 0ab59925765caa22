/*
 * Choosing a poller backend: names and parsing, the SEDA_POLLER environment
 * variable (and bad values), explicit choice over the environment, option
 * checks, and io_uring's fallback to epoll when the kernel refuses a ring.
 *
 * The refusal is real, not simulated: a child process forbids
 * io_uring_setup with a seccomp filter (as container runtimes do), so the
 * kernel answers EPERM and the poller must fall back, warn, and work.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "test.h"

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_names(void)
{
    for (int b = 0; b < SEDA_POLLER_BACKEND_END; b++) {
        const char *name = seda_poller_backend_name(b);
        CHECK(name != NULL);
        CHECK_EQ(seda_poller_backend_parse(name), b);
    }
    CHECK(strcmp(seda_poller_backend_name(SEDA_POLLER_IO_URING), "io_uring") == 0);
    CHECK(seda_poller_backend_name(-1) == NULL);
    CHECK(seda_poller_backend_name(SEDA_POLLER_BACKEND_END) == NULL);
    CHECK_EQ(seda_poller_backend_parse("EPoll"), SEDA_POLLER_EPOLL);
    CHECK_EQ(seda_poller_backend_parse("uring"), SEDA_POLLER_IO_URING);
    CHECK_EQ(seda_poller_backend_parse("iouring"), SEDA_POLLER_IO_URING);
    CHECK_EQ(seda_poller_backend_parse("default"), SEDA_POLLER_DEFAULT);
    CHECK_RC(seda_poller_backend_parse("kqueue"), -EINVAL);
    CHECK_RC(seda_poller_backend_parse("epoll "), -EINVAL);
    CHECK_RC(seda_poller_backend_parse(""), -EINVAL);
    CHECK_RC(seda_poller_backend_parse(NULL), -EINVAL);

    CHECK_EQ(seda_poller_backend_trigger(SEDA_POLLER_SELECT), SEDA_POLLER_LEVEL);
    CHECK_EQ(seda_poller_backend_trigger(SEDA_POLLER_POLL), SEDA_POLLER_LEVEL);
    CHECK_EQ(seda_poller_backend_trigger(SEDA_POLLER_EPOLL), SEDA_POLLER_EDGE);
    CHECK_EQ(seda_poller_backend_trigger(SEDA_POLLER_IO_URING), SEDA_POLLER_EDGE);
    CHECK_RC(seda_poller_backend_trigger(42), -EINVAL);
}

static void test_environment(void)
{
    CHECK(unsetenv("SEDA_POLLER") == 0);
    int def = seda_poller_backend_default();
    CHECK(def > SEDA_POLLER_DEFAULT && def < SEDA_POLLER_BACKEND_END);
    CHECK_EQ(seda_poller_backend_resolve(SEDA_POLLER_DEFAULT), def);
    CHECK_RC(seda_poller_backend_resolve(-1), -EINVAL);
    CHECK_RC(seda_poller_backend_resolve(SEDA_POLLER_BACKEND_END), -EINVAL);

    for (int b = SEDA_POLLER_SELECT; b < SEDA_POLLER_BACKEND_END; b++) {
        CHECK(setenv("SEDA_POLLER", seda_poller_backend_name(b), 1) == 0);
        CHECK_EQ(seda_poller_backend_resolve(SEDA_POLLER_DEFAULT), b);
        seda_poller_t *p;
        CHECK_OK(seda_poller_create(&p, SEDA_POLLER_DEFAULT, NULL));
        if (b != SEDA_POLLER_IO_URING || (seda_features() & SEDA_FEATURE_IO_URING))
            CHECK_EQ(seda_poller_backend_of(p), b);
        seda_poller_destroy(p);
        /* An explicit choice wins over the environment. */
        int other = b == SEDA_POLLER_POLL ? SEDA_POLLER_SELECT : SEDA_POLLER_POLL;
        CHECK_OK(seda_poller_create(&p, other, NULL));
        CHECK_EQ(seda_poller_backend_of(p), other);
        seda_poller_destroy(p);
    }
    CHECK(setenv("SEDA_POLLER", "POLL", 1) == 0);
    CHECK_EQ(seda_poller_backend_resolve(SEDA_POLLER_DEFAULT), SEDA_POLLER_POLL);
    CHECK(setenv("SEDA_POLLER", "default", 1) == 0);
    CHECK_EQ(seda_poller_backend_resolve(SEDA_POLLER_DEFAULT), def);
    CHECK(setenv("SEDA_POLLER", "", 1) == 0);
    CHECK_EQ(seda_poller_backend_resolve(SEDA_POLLER_DEFAULT), def);

    /* A typo is an error, not a silent default. */
    CHECK(setenv("SEDA_POLLER", "epol", 1) == 0);
    CHECK_RC(seda_poller_backend_resolve(SEDA_POLLER_DEFAULT), -EINVAL);
    CHECK_RC(seda_poller_backend_trigger(SEDA_POLLER_DEFAULT), -EINVAL);
    seda_poller_t *p;
    CHECK_RC(seda_poller_create(&p, SEDA_POLLER_DEFAULT, NULL), -EINVAL);
    /* ...that does not matter when the caller chooses. */
    CHECK_OK(seda_poller_create(&p, SEDA_POLLER_EPOLL, NULL));
    seda_poller_destroy(p);
    CHECK(unsetenv("SEDA_POLLER") == 0);
}

static void test_options(void)
{
    seda_poller_t *p;
    seda_poller_options_t o = { .flags = 1u << 7 };
    CHECK_RC(seda_poller_create(NULL, SEDA_POLLER_EPOLL, NULL), -EINVAL);
    CHECK_RC(seda_poller_create(&p, SEDA_POLLER_EPOLL, &o), -EINVAL);
    CHECK_RC(seda_poller_create(&p, 17, NULL), -EINVAL);
    o = (seda_poller_options_t){ .uring_entries = 3 };
    CHECK_RC(seda_poller_create(&p, SEDA_POLLER_IO_URING, &o), -EINVAL);
    o = (seda_poller_options_t){ .uring_entries = 65536 };
    CHECK_RC(seda_poller_create(&p, SEDA_POLLER_IO_URING, &o), -EINVAL);
    if (!(seda_features() & SEDA_FEATURE_IO_URING))
        return;
    o = (seda_poller_options_t){ .uring_entries = 8, .flags = SEDA_POLLER_NO_FALLBACK };
    CHECK_OK(seda_poller_create(&p, SEDA_POLLER_IO_URING, &o));
    CHECK_EQ(seda_poller_backend_of(p), SEDA_POLLER_IO_URING);
    CHECK_EQ(seda_poller_fallback_error(p), 0);
    CHECK(strstr(seda_poller_describe(p), "io_uring") != NULL);
    /* A ring of 8 entries takes many more registrations than it has room
     * for: add submits whenever the queue is full. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    int dups[100];
    for (int i = 0; i < 100; i++) {
        dups[i] = dup(sv[1]);
        CHECK(dups[i] >= 0);
        CHECK_OK(seda_poller_add(p, dups[i], SEDA_POLLER_OUT, NULL));
    }
    seda_poller_event_t ev[128];
    int seen = 0;
    for (int round = 0; round < 100 && seen < 100; round++) {
        int n = seda_poller_wait(p, ev, 128, 10LL * 1000000000);
        CHECK(n > 0);
        seen += n;
    }
    CHECK_EQ(seen, 100);
    for (int i = 0; i < 100; i++) {
        CHECK_OK(seda_poller_del(p, dups[i]));
        close(dups[i]);
    }
    seda_poller_destroy(p);
    close(sv[0]);
    close(sv[1]);
}

/* ---- io_uring refused by the kernel -------------------------------------- */

static int forbid_io_uring_setup(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -errno;
    return 0;
}

struct log_capture {
    int calls;
    char last[256];
};

static void capture(void *ctx, const char *message)
{
    struct log_capture *c = ctx;
    c->calls++;
    snprintf(c->last, sizeof c->last, "%s", message);
}

/* Runs in the child, behind the filter. Exit code: 0 pass, 77 skip. */
static void refused_child(void)
{
    if (forbid_io_uring_setup() != 0)
        _exit(TEST_SKIP);
    seda_poller_t *p;

    /* The refusal, as the kernel gives it. */
    seda_poller_options_t strict = { .flags = SEDA_POLLER_NO_FALLBACK };
    CHECK_RC(seda_poller_create(&p, SEDA_POLLER_IO_URING, &strict), -EPERM);

    /* Fallback: an epoll poller, one warning naming the reason. */
    struct log_capture log = { 0 };
    seda_poller_options_t o = { .log = capture, .log_ctx = &log };
    CHECK_OK(seda_poller_create(&p, SEDA_POLLER_IO_URING, &o));
    CHECK_EQ(seda_poller_backend_of(p), SEDA_POLLER_EPOLL);
    CHECK_EQ(seda_poller_trigger(p), SEDA_POLLER_EDGE);
    CHECK_RC(seda_poller_fallback_error(p), -EPERM);
    CHECK_EQ(log.calls, 1);
    CHECK(strstr(log.last, "io_uring") != NULL);
    CHECK(strstr(log.last, "EPERM") != NULL);
    CHECK(strstr(log.last, "epoll") != NULL);
    CHECK(strstr(seda_poller_describe(p), "epoll") != NULL);
    CHECK(strstr(seda_poller_describe(p), "refused") != NULL);

    /* ...that works. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK_OK(seda_poller_add(p, sv[1], SEDA_POLLER_IN, &sv));
    CHECK_EQ(write(sv[0], "x", 1), 1);
    seda_poller_event_t ev[4];
    CHECK_EQ(seda_poller_wait(p, ev, 4, 10LL * 1000000000), 1);
    CHECK(ev[0].fd == sv[1] && ev[0].udata == &sv && ev[0].events == SEDA_POLLER_IN);
    CHECK_OK(seda_poller_del(p, sv[1]));
    seda_poller_destroy(p);

    /* The same through SEDA_POLLER=io_uring; no log callback, so the
     * warning goes to stderr (seen in the test's output). */
    CHECK(setenv("SEDA_POLLER", "io_uring", 1) == 0);
    CHECK_OK(seda_poller_create(&p, SEDA_POLLER_DEFAULT, NULL));
    CHECK_EQ(seda_poller_backend_of(p), SEDA_POLLER_EPOLL);
    CHECK_RC(seda_poller_fallback_error(p), -EPERM);
    seda_poller_destroy(p);
    close(sv[0]);
    close(sv[1]);
    _exit(0);
}

static int test_refused(void)
{
    if (!(seda_features() & SEDA_FEATURE_IO_URING)) {
        fprintf(stderr, "io_uring unavailable here: the fallback is the normal path\n");
        seda_poller_t *p;
        CHECK_OK(seda_poller_create(&p, SEDA_POLLER_IO_URING, NULL));
        CHECK_EQ(seda_poller_backend_of(p), SEDA_POLLER_EPOLL);
        CHECK(seda_poller_fallback_error(p) < 0);
        seda_poller_destroy(p);
        return 0;
    }
    /* Without the filter: a real ring, no fallback. */
    seda_poller_t *p;
    struct log_capture log = { 0 };
    seda_poller_options_t o = { .log = capture, .log_ctx = &log };
    CHECK_OK(seda_poller_create(&p, SEDA_POLLER_IO_URING, &o));
    CHECK_EQ(seda_poller_backend_of(p), SEDA_POLLER_IO_URING);
    CHECK_EQ(seda_poller_fallback_error(p), 0);
    CHECK_EQ(log.calls, 0);
    seda_poller_destroy(p);

    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0)
        refused_child();
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) == TEST_SKIP) {
        fprintf(stderr, "seccomp unavailable: the fallback test was skipped\n");
        return TEST_SKIP;
    }
    CHECK_EQ(WEXITSTATUS(status), 0);
    return 0;
}

int main(void)
{
    int fds_before = count_fds();
    test_names();
    test_environment();
    test_options();
    int rc = test_refused();
    CHECK_EQ(count_fds(), fds_before);
    return rc;
}
