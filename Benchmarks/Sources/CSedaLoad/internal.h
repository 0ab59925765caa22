/* Helpers shared by the load generators' files; not part of the API. */
#ifndef SLOAD_INTERNAL_H
#define SLOAD_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

/*
 * A start gate: each of `workers` threads arrives once its connections are
 * up, and waits for the others; the last to arrive stores the start time.
 * `workers` is stored by the starting thread once it knows how many threads
 * it got (0 until then). A waiter gives up at `deadline` (returns -1).
 */
struct sload__gate {
    _Atomic uint32_t arrived; /* fetch_add acq_rel by arrivals; acquire loads by waiters */
    _Atomic uint32_t workers; /* release store by the starter; acquire loads by waiters */
    _Atomic int64_t start;    /* release store by the last arrival; acquire loads (sload__gate_start) */
};

int sload__gate_wait(struct sload__gate *g, int64_t deadline);
void sload__gate_open(struct sload__gate *g, uint32_t workers);
int64_t sload__gate_start(struct sload__gate *g);

/* Adds to a counter that only the calling thread writes (others read it relaxed). */
static inline void sload__bump64(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d, memory_order_relaxed);
}
static inline void sload__bump32(_Atomic uint32_t *c, uint32_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d, memory_order_relaxed);
}

#endif
