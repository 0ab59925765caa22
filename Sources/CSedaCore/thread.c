/* Naming and pinning the runtime's threads. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"

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

void seda__pin_thread(pthread_t t, int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpu < 0 || n <= 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % n, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}
