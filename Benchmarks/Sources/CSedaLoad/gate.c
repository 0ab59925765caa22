/* The start gate of the load generators (see internal.h). */
#define _GNU_SOURCE
#include "internal.h"
#include "sload_net.h"

#include <time.h>

int sload__gate_wait(struct sload__gate *g, int64_t deadline)
{
    uint32_t me = atomic_fetch_add_explicit(&g->arrived, 1, memory_order_acq_rel) + 1;
    for (;;) {
        uint32_t total = atomic_load_explicit(&g->workers, memory_order_acquire);
        if (total != 0 && me == total) {
            atomic_store_explicit(&g->start, sload_now_ns(), memory_order_release);
            return 0;
        }
        if (total != 0 && atomic_load_explicit(&g->arrived, memory_order_acquire) >= total &&
            atomic_load_explicit(&g->start, memory_order_acquire) != 0)
            return 0;
        if (sload_now_ns() >= deadline)
            return -1;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

void sload__gate_open(struct sload__gate *g, uint32_t workers)
{
    atomic_store_explicit(&g->workers, workers ? workers : 1, memory_order_release);
}

int64_t sload__gate_start(struct sload__gate *g)
{
    return atomic_load_explicit(&g->start, memory_order_acquire);
}
