/*
 * The poller: backend names and choice, the descriptor table every backend
 * shares, argument checks, and dispatch to the backend's ops table. The
 * backends are poller_select.c, poller_poll.c, poller_epoll.c and
 * poller_uring.c; the contracts are in include/seda/poller.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "poller.h"

static const char *const backend_names[SEDA_POLLER_BACKEND_END] = {
    [SEDA_POLLER_DEFAULT] = "default",   [SEDA_POLLER_SELECT] = "select",
    [SEDA_POLLER_POLL] = "poll",         [SEDA_POLLER_EPOLL] = "epoll",
    [SEDA_POLLER_IO_URING] = "io_uring",
};

const char *seda_poller_backend_name(int backend)
{
    if (backend < 0 || backend >= SEDA_POLLER_BACKEND_END)
        return NULL;
    return backend_names[backend];
}

int seda_poller_backend_parse(const char *name)
{
    if (name == NULL)
        return -EINVAL;
    for (int b = 0; b < SEDA_POLLER_BACKEND_END; b++)
        if (strcasecmp(name, backend_names[b]) == 0)
            return b;
    if (strcasecmp(name, "uring") == 0 || strcasecmp(name, "iouring") == 0)
        return SEDA_POLLER_IO_URING;
    return -EINVAL;
}

int seda_poller_backend_default(void)
{
    return SEDA_POLLER_EPOLL;
}

int seda_poller_backend_resolve(int requested)
{
    if (requested < 0 || requested >= SEDA_POLLER_BACKEND_END)
        return -EINVAL;
    if (requested != SEDA_POLLER_DEFAULT)
        return requested;
    const char *env = getenv("SEDA_POLLER");
    if (env != NULL && env[0] != '\0') {
        int b = seda_poller_backend_parse(env);
        if (b < 0)
            return -EINVAL;
        if (b != SEDA_POLLER_DEFAULT)
            return b;
    }
    return seda_poller_backend_default();
}

static const struct seda__poller_ops *ops_of(int backend)
{
    switch (backend) {
    case SEDA_POLLER_SELECT: return &seda__poller_select_ops;
    case SEDA_POLLER_POLL: return &seda__poller_poll_ops;
    case SEDA_POLLER_EPOLL: return &seda__poller_epoll_ops;
    case SEDA_POLLER_IO_URING: return &seda__poller_uring_ops;
    default: return NULL;
    }
}

int seda_poller_backend_trigger(int backend)
{
    int b = seda_poller_backend_resolve(backend);
    if (b < 0)
        return b;
    return ops_of(b)->trigger;
}

static void warn(const seda_poller_options_t *opts, const char *message)
{
    if (opts->log != NULL)
        opts->log(opts->log_ctx, message);
    else
        fprintf(stderr, "%s\n", message);
}

int seda_poller_create(seda_poller_t **out, int backend, const seda_poller_options_t *opts)
{
    static const seda_poller_options_t defaults;
    if (out == NULL)
        return -EINVAL;
    if (opts == NULL)
        opts = &defaults;
    if (opts->flags & ~(uint32_t)SEDA_POLLER_NO_FALLBACK)
        return -EINVAL;
    uint32_t entries = opts->uring_entries;
    if (entries != 0 && (entries > 32768 || (entries & (entries - 1)) != 0))
        return -EINVAL;
    int b = seda_poller_backend_resolve(backend);
    if (b < 0)
        return b;

    seda_poller_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->ops = ops_of(b);
    int rc = p->ops->init(p, opts);
    if (rc < 0 && b == SEDA_POLLER_IO_URING && !(opts->flags & SEDA_POLLER_NO_FALLBACK)) {
        char message[200];
        snprintf(message, sizeof message,
                 "seda: poller: the kernel refused an io_uring ring (%s: %s); using epoll",
                 strerrorname_np(-rc) ? strerrorname_np(-rc) : "?",
                 strerrordesc_np(-rc) ? strerrordesc_np(-rc) : "unknown error");
        warn(opts, message);
        p->ops = &seda__poller_epoll_ops;
        p->fallback_error = rc;
        rc = p->ops->init(p, opts);
        if (rc == 0) {
            size_t len = strlen(p->describe);
            snprintf(p->describe + len, sizeof p->describe - len, "; io_uring refused: %s",
                     strerrorname_np(-p->fallback_error) ? strerrorname_np(-p->fallback_error)
                                                         : "?");
        }
    }
    if (rc < 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void seda_poller_destroy(seda_poller_t *p)
{
    if (p == NULL)
        return;
    p->ops->fini(p);
    free(p->fds);
    free(p);
}

/* Makes p->fds[fd] exist (zeroed when new). */
static int reserve(seda_poller_t *p, int fd)
{
    if ((uint32_t)fd < p->fds_cap)
        return 0;
    uint64_t cap = p->fds_cap ? p->fds_cap : 64;
    while (cap <= (uint64_t)fd)
        cap *= 2;
    struct seda__poller_fd *fds = realloc(p->fds, (size_t)cap * sizeof *fds);
    if (fds == NULL)
        return -ENOMEM;
    memset(fds + p->fds_cap, 0, (size_t)(cap - p->fds_cap) * sizeof *fds);
    p->fds = fds;
    p->fds_cap = (uint32_t)cap;
    return 0;
}

int seda_poller_add(seda_poller_t *p, int fd, uint32_t events, void *udata)
{
    if (fd < 0)
        return -EBADF;
    if (events & ~(uint32_t)SEDA__POLLER_ALL)
        return -EINVAL;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    rc = reserve(p, fd);
    if (rc < 0)
        return rc;
    struct seda__poller_fd *e = &p->fds[fd];
    if (e->registered)
        return -EEXIST;
    struct seda__poller_fd saved = *e;
    e->udata = udata;
    e->events = events & SEDA__POLLER_INTEREST;
    e->gen++;
    e->registered = 1;
    rc = p->ops->add(p, fd);
    if (rc < 0) {
        *e = saved;
        return rc;
    }
    p->count++;
    return 0;
}

int seda_poller_mod(seda_poller_t *p, int fd, uint32_t events, void *udata)
{
    if (fd < 0)
        return -EBADF;
    if (events & ~(uint32_t)SEDA__POLLER_ALL)
        return -EINVAL;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    if ((uint32_t)fd >= p->fds_cap || !p->fds[fd].registered)
        return -ENOENT;
    struct seda__poller_fd *e = &p->fds[fd];
    struct seda__poller_fd saved = *e;
    e->udata = udata;
    e->events = events & SEDA__POLLER_INTEREST;
    e->gen++;
    rc = p->ops->mod(p, fd, saved.events);
    if (rc < 0) {
        *e = saved;
        return rc;
    }
    return 0;
}

int seda_poller_del(seda_poller_t *p, int fd)
{
    if (fd < 0)
        return -EBADF;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    if ((uint32_t)fd >= p->fds_cap || !p->fds[fd].registered)
        return -ENOENT;
    rc = p->ops->del(p, fd);
    if (rc < 0)
        return rc;
    struct seda__poller_fd *e = &p->fds[fd];
    e->registered = 0;
    e->events = 0;
    e->udata = NULL;
    e->gen++;
    p->count--;
    return 0;
}

int seda_poller_wait(seda_poller_t *p, seda_poller_event_t *out, int max, int64_t timeout_ns)
{
    if (out == NULL || max < 1)
        return -EINVAL;
    int rc = seda__poller_enter(p);
    if (rc < 0)
        return rc;
    if (timeout_ns < 0)
        timeout_ns = -1;
    int64_t deadline = 0;
    if (timeout_ns > 0 && __builtin_add_overflow(seda__now_ns(), timeout_ns, &deadline))
        deadline = INT64_MAX; /* "a very long time" stays in the future */
    int64_t left = timeout_ns;
    for (;;) {
        int n = p->ops->wait(p, out, max, left);
        /* A backend returns 0 early only when it saw nothing to report
         * (io_uring: a stale completion): wait for the time that is left. */
        if (n != 0 || timeout_ns == 0)
            return n;
        if (timeout_ns > 0) {
            int64_t now = seda__now_ns();
            if (now >= deadline)
                return 0;
            left = deadline - now;
        }
    }
}

int seda_poller_backend_of(const seda_poller_t *p)
{
    return p->ops->backend;
}

int seda_poller_trigger(const seda_poller_t *p)
{
    return p->ops->trigger;
}

int seda_poller_fallback_error(const seda_poller_t *p)
{
    return p->fallback_error;
}

const char *seda_poller_describe(const seda_poller_t *p)
{
    return p->describe;
}

int seda_poller_count(const seda_poller_t *p)
{
    return p->count;
}
