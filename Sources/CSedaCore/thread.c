/* Starting, naming and pinning the core's threads. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "runtime_internal.h"

int seda__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int r = pthread_create(t, NULL, fn, arg);
    if (r == 0)
        return 0;
    return r == EAGAIN ? -ENOMEM : -r;
}

void seda__name_thread(pthread_t t, const char *name)
{
    char buf[16]; /* the kernel's limit: 15 bytes + NUL */
    size_t n = strlen(name);
    if (n > sizeof buf - 1)
        n = sizeof buf - 1;
    memcpy(buf, name, n);
    buf[n] = '\0';
    pthread_setname_np(t, buf);
}

int seda__nth_allowed_cpu(const cpu_set_t *allowed, int index)
{
    int count = CPU_COUNT(allowed);
    if (index < 0 || count == 0)
        return -1;
    int want = index % count;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, allowed) && want-- == 0)
            return cpu;
    return -1;
}

void seda__pin_thread(const seda_runtime_t *rt, pthread_t t, int index)
{
    int cpu = seda__nth_allowed_cpu(&rt->allowed_cpus, index);
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}
