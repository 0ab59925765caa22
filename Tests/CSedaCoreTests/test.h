/*
 * Assertions for the C tests. A test is a program: exit 0 pass, 1 fail,
 * 77 skip (CTest SKIP_RETURN_CODE). Failures print both values.
 */
#ifndef SEDA_TEST_H
#define SEDA_TEST_H

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seda/seda.h"

#define TEST_SKIP 77

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                            \
    do {                                                                                          \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                           \
        if (check_a_ != check_b_) {                                                               \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
                    check_a_, check_b_);                                                          \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

/* Checks a Seda return code, naming the error on failure. */
#define CHECK_RC(expr, want)                                                              \
    do {                                                                                  \
        int check_rc_ = (expr);                                                           \
        if (check_rc_ != (want)) {                                                        \
            fprintf(stderr, "%s:%d: %s returned %d (%s: %s), wanted %d (%s)\n", __FILE__, \
                    __LINE__, #expr, check_rc_, seda_err_name(check_rc_),                 \
                    seda_strerror(check_rc_), (int)(want), seda_err_name(want));          \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, 0)

/* How many of this process's threads whose name starts with `prefix` are
 * asleep (state S in /proc: blocked in the kernel, e.g. in futex or ppoll),
 * as opposed to running or about to block. */
static inline int threads_sleeping(const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        /* "tid (comm) S ...": the state follows the last ')'. */
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (open && close && strncmp(open + 1, prefix, len) == 0 && close[1] == ' ' &&
            close[2] == 'S')
            n++;
    }
    closedir(d);
    return n;
}

#endif /* SEDA_TEST_H */
