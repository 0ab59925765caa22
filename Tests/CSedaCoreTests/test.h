/*
 * Assertions for the C tests. A test is a program: exit 0 pass, 1 fail,
 * 77 skip (CTest SKIP_RETURN_CODE). Failures print both values.
 */
#ifndef SEDA_TEST_H
#define SEDA_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif /* SEDA_TEST_H */
