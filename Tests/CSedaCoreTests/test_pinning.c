/*
 * Pinning honours the affinity mask the runtime's creator runs with (a cpuset
 * container's CPUs, taskset): shared thread i goes to the i-th allowed CPU,
 * a pinned pool to the pin_cpu-th, wrapping around. It used to pin to CPU
 * i % (CPUs online), which in a container names CPUs the process may not
 * use: the pin failed and the thread stayed unpinned.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "runtime_internal.h"
#include "test.h"

static void test_nth_allowed_cpu(void)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CHECK_EQ(seda__nth_allowed_cpu(&s, 0), -1);
    CPU_SET(2, &s);
    CPU_SET(5, &s);
    CPU_SET(7, &s);
    CHECK_EQ(seda__nth_allowed_cpu(&s, 0), 2);
    CHECK_EQ(seda__nth_allowed_cpu(&s, 1), 5);
    CHECK_EQ(seda__nth_allowed_cpu(&s, 2), 7);
    CHECK_EQ(seda__nth_allowed_cpu(&s, 3), 2);
    CHECK_EQ(seda__nth_allowed_cpu(&s, 7), 5);
    CHECK_EQ(seda__nth_allowed_cpu(&s, -1), -1);
}

/* The CPU set of this process's thread named `name` (exactly one). */
static cpu_set_t affinity_of(const char *name)
{
    char path[300], comm[32];
    cpu_set_t set;
    CPU_ZERO(&set);
    int found = 0;
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int match = fgets(comm, sizeof comm, f) && (comm[strcspn(comm, "\n")] = '\0', 1) &&
                    strcmp(comm, name) == 0;
        fclose(f);
        if (!match)
            continue;
        CHECK_OK(sched_getaffinity((pid_t)atoi(e->d_name), sizeof set, &set));
        found++;
    }
    closedir(d);
    CHECK_EQ(found, 1);
    return set;
}

static int handle(void *ctx, void **events, size_t count)
{
    (void)ctx;
    (void)events;
    (void)count;
    return 0;
}

static void drop(void *ctx, void *event)
{
    (void)ctx;
    (void)event;
}

/* Creates a pinned runtime (3 threads) and a pool pinned to index 1 on the
 * calling thread's current mask, and checks each thread's CPU. */
static void check_pinning(const cpu_set_t *allowed)
{
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 3, .pin_threads = 1 };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "seda-cpu%d", i);
        cpu_set_t got = affinity_of(name);
        CHECK_EQ(CPU_COUNT(&got), 1);
        CHECK(CPU_ISSET(seda__nth_allowed_cpu(allowed, i), &got));
    }
    seda_stage_options_t o = { .name = "pinned-pool",
                               .handler = handle,
                               .drop = drop,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .pin_to_cpu = 1,
                               .pin_cpu = 1 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    cpu_set_t got = affinity_of("pinned-pool");
    CHECK_EQ(CPU_COUNT(&got), 1);
    CHECK(CPU_ISSET(seda__nth_allowed_cpu(allowed, 1), &got));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
}

int main(void)
{
    test_nth_allowed_cpu();
    cpu_set_t all;
    CHECK_OK(sched_getaffinity(0, sizeof all, &all));
    check_pinning(&all);
    /* As in a container that leaves out the first CPU: the threads must
     * land on the CPUs that remain. */
    if (CPU_COUNT(&all) < 2) {
        puts("pinning: ok (one CPU: restricted case skipped)");
        return 0;
    }
    cpu_set_t rest = all;
    CPU_CLR(seda__nth_allowed_cpu(&all, 0), &rest);
    CHECK_OK(pthread_setaffinity_np(pthread_self(), sizeof rest, &rest));
    check_pinning(&rest);
    CHECK_OK(pthread_setaffinity_np(pthread_self(), sizeof all, &all));
    puts("pinning: ok");
    return 0;
}
