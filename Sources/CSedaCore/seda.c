/*
 * Version, error strings and the kernel feature probe. The probe asks the
 * kernel directly (io_uring_setup, io_setup): it needs neither liburing nor
 * libaio, which only the files that drive rings and AIO link (CMakeLists).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/aio_abi.h>
#include <linux/io_uring.h>

#include "internal.h"
#include "seda/seda.h"

const char *seda_version(void)
{
    return SEDA_VERSION_STRING;
}

/* The errno value of a code of either sign; -1 for INT_MIN, which has no
 * positive counterpart (negating it overflows). */
static int errno_of(int code)
{
    if (code == INT_MIN)
        return -1;
    return code < 0 ? -code : code;
}

const char *seda_strerror(int code)
{
    int e = errno_of(code);
    switch (e) {
    case 0: return "success";
#define SEDA_MESSAGE(name, message) \
    case name: return message;
        SEDA_ERRNO_MAP(SEDA_MESSAGE)
#undef SEDA_MESSAGE
    default: break;
    }
    /* glibc's own table: static strings, NULL for an unknown code. */
    const char *d = e > 0 ? strerrordesc_np(e) : NULL;
    return d ? d : "unknown error";
}

const char *seda_err_name(int code)
{
    switch (errno_of(code)) {
    case 0: return "OK";
#define SEDA_NAME(name, message) \
    case name: return #name;
        SEDA_ERRNO_MAP(SEDA_NAME)
#undef SEDA_NAME
    default: return "UNKNOWN";
    }
}

int seda_err_code_at(size_t index)
{
#define SEDA_CODE(name, message) name,
    static const int codes[] = { SEDA_ERRNO_MAP(SEDA_CODE) };
#undef SEDA_CODE
    return index < sizeof codes / sizeof codes[0] ? codes[index] : 0;
}

void *seda__alloc_aligned(size_t size)
{
    size_t rounded = (size + SEDA__CACHELINE - 1) & ~(size_t)(SEDA__CACHELINE - 1);
    void *p = aligned_alloc(SEDA__CACHELINE, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

static uint32_t probe_features(void)
{
    uint32_t f = 0;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd >= 0) {
        f |= SEDA_FEATURE_EPOLL;
        close(fd);
    }
    fd = eventfd(0, EFD_CLOEXEC);
    if (fd >= 0) {
        f |= SEDA_FEATURE_EVENTFD;
        close(fd);
    }
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    fd = (int)syscall(SYS_io_uring_setup, 2, &params);
    if (fd >= 0) {
        f |= SEDA_FEATURE_IO_URING;
        close(fd);
    }
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 1, &ctx) == 0) {
        f |= SEDA_FEATURE_LIBAIO;
        syscall(SYS_io_destroy, ctx);
    }
    return f;
}

uint32_t seda_features(void)
{
    /* Bit 31 marks "probed". Racing first calls probe twice and store the same
     * value; relaxed suffices since the value carries no other data. */
    static _Atomic uint32_t cached;
    uint32_t f = atomic_load_explicit(&cached, memory_order_relaxed);
    if (f & (1u << 31))
        return f & ~(1u << 31);
    f = probe_features();
    atomic_store_explicit(&cached, f | (1u << 31), memory_order_relaxed);
    return f;
}
