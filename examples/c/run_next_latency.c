/*
 * A measurement, not a test: how long an event a shared-thread handler sends
 * waits before the receiving stage runs, while the other shared thread has
 * nothing to do. Stage A does 20 us of work per event and forwards each to
 * stage B; bursts of 32 events arrive every 5 ms; B records now - send time.
 * Before the run-next handoff, B waited in the sending thread's run-next
 * slot for the rest of A's turn (up to 16 batches, ~300 us here).
 *   seda-run-next-latency [bursts]      (default 200: about a second)
 * On a machine whose CPUs are busy with other work the idle shared thread
 * gets no CPU either, and the figures show the scheduler, not Seda.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <seda/seda.h>

enum { BURST = 32, WORK_NS = 20000, MAX_SAMPLES = 1 << 16 };

struct ev {
    int64_t sent;
};

static seda_stage_t *stage_b;
static int64_t latency[MAX_SAMPLES];
static _Atomic uint64_t samples;

static int64_t now_ns(void)
{
    return seda_clock_now(NULL);
}

static int work_then_forward(void *ctx, void **events, size_t count)
{
    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        int64_t t = now_ns();
        while (now_ns() - t < WORK_NS) {
        }
        struct ev *e = events[i];
        e->sent = now_ns();
        while (seda_stage_enqueue(stage_b, e) == -EAGAIN)
            sched_yield();
    }
    return 0;
}

static int record(void *ctx, void **events, size_t count)
{
    (void)ctx;
    int64_t t = now_ns();
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        uint64_t k = atomic_fetch_add(&samples, 1);
        if (k < MAX_SAMPLES)
            latency[k] = t - e->sent;
        free(e);
    }
    return 0;
}

static void drop(void *ctx, void *event)
{
    (void)ctx;
    free(event);
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int bursts = argc > 1 ? atoi(argv[1]) : 200;
    if (bursts < 1 || bursts * BURST > MAX_SAMPLES) {
        fprintf(stderr, "usage: %s [bursts: 1..%d]\n", argv[0], MAX_SAMPLES / BURST);
        return 1;
    }
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = 2 };
    int r = seda_runtime_create(&rt, &ro);
    if (r < 0) {
        fprintf(stderr, "seda_runtime_create: %s\n", seda_strerror(r));
        return 1;
    }
    seda_stage_options_t ob = {
        .name = "B", .handler = record, .drop = drop, .batch_max = 64, .queue_capacity = 4096
    };
    seda_stage_options_t oa = { .name = "A",
                                .handler = work_then_forward,
                                .drop = drop,
                                .batch_max = 1,
                                .queue_capacity = 4096 };
    seda_stage_t *a;
    if (seda_stage_create(rt, &ob, &stage_b) < 0 || seda_stage_create(rt, &oa, &a) < 0) {
        fprintf(stderr, "seda_stage_create failed\n");
        return 1;
    }
    for (int b = 0; b < bursts; b++) {
        for (int i = 0; i < BURST; i++) {
            struct ev *e = malloc(sizeof *e);
            if (!e || seda_stage_enqueue(a, e) < 0) {
                fprintf(stderr, "enqueue failed\n");
                return 1;
            }
        }
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1);
    uint64_t n = atomic_load(&samples);
    qsort(latency, n, sizeof latency[0], by_value);
    printf("A -> B latency over %llu events (us): p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           (unsigned long long)n, latency[n / 2] / 1e3, latency[n * 9 / 10] / 1e3,
           latency[n * 99 / 100] / 1e3, latency[n - 1] / 1e3);
    seda_stage_release(a);
    seda_stage_release(stage_b);
    seda_runtime_destroy(rt);
    return 0;
}
