/* Starting and stopping a benchmark's server (see sload_spawn.h). */
#define _GNU_SOURCE
#include "sload_spawn.h"
#include "sload_net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int sload_spawn(const char *const *argv, const char *stderr_path, int32_t *pid, int *stdout_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    if (stderr_path)
        posix_spawn_file_actions_addopen(&fa, 2, stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    /* The child must not inherit the benchmark's blocked signals (SIGINT stops it). */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    pid_t child;
    int rc = posix_spawn(&child, argv[0], &fa, &at, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return -rc;
    }
    *pid = child;
    *stdout_fd = p[0];
    return 0;
}

int sload_wait_port(int fd, double timeout_s)
{
    char buf[4096];
    size_t len = 0;
    int64_t deadline = sload_now_ns() + (int64_t)(timeout_s * 1e9);
    for (;;) {
        int64_t left = deadline - sload_now_ns();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left / 1000000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -EPIPE;
        len += (size_t)k;
        buf[len] = 0;
        char *at = strstr(buf, "127.0.0.1:");
        if (at) {
            char *end;
            long port = strtol(at + 10, &end, 10);
            if (end != at + 10 && (*end == '\n' || *end == ' ' || *end == '\r' || *end == '/') && port > 0 && port < 65536)
                return (int)port;
        }
        if (len == sizeof buf - 1) { /* keep the tail: the address may straddle */
            memmove(buf, buf + len - 64, 64);
            len = 64;
        }
    }
}

int sload_stop(int32_t pid, double timeout_s)
{
    if (kill(pid, SIGINT) != 0 && errno != ESRCH)
        return -errno;
    int64_t deadline = sload_now_ns() + (int64_t)(timeout_s * 1e9);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0)
            return -errno;
        if (sload_now_ns() > deadline) {
            kill(pid, SIGKILL);
            if (waitpid(pid, &status, 0) == pid)
                return 128 + SIGKILL;
            return -errno;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}
