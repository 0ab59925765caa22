/* A stage's queues, one per priority class (include/seda/runtime.h,
 * seda_stage_options.classes): class 0 is served first. */
#include <errno.h>

#include "runtime_internal.h"

int seda__stage_dequeue(seda_stage_t *s, void **buf, uint32_t *stamps, size_t max)
{
    int r = seda_queue_dequeue_many(s->queues[0], buf, stamps, max);
    if (SEDA__LIKELY(s->classes == 1 || r > 0))
        return r;
    bool all_closed = r == -EPIPE;
    for (uint32_t c = 1; c < s->classes; c++) {
        int k = seda_queue_dequeue_many(s->queues[c], buf, stamps, max);
        if (k > 0)
            return k;
        all_closed = all_closed && k == -EPIPE;
    }
    return all_closed ? -EPIPE : -EAGAIN;
}

size_t seda__stage_size(const seda_stage_t *s)
{
    size_t n = 0;
    for (uint32_t c = 0; c < s->classes; c++)
        n += seda_queue_size(s->queues[c]);
    return n;
}

uint64_t seda__stage_accepted(const seda_stage_t *s)
{
    uint64_t n = 0;
    for (uint32_t c = 0; c < s->classes; c++)
        n += seda_queue_accepted(s->queues[c]);
    return n;
}

void seda__stage_close(seda_stage_t *s)
{
    for (uint32_t c = 0; c < s->classes; c++)
        seda_queue_close(s->queues[c]);
}

bool seda__stage_is_closed(const seda_stage_t *s)
{
    return seda_queue_is_closed(s->queues[0]);
}

void seda__stage_free_queues(seda_stage_t *s)
{
    for (uint32_t c = 0; c < s->classes; c++)
        seda_queue_destroy(s->queues[c], NULL, NULL);
    seda_notifier_destroy(s->notifier);
}
