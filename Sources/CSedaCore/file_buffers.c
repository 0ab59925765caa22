/*
 * The file stage's aligned buffer pool.
 *
 * One arena, mapped once (so io_uring can register it as a single fixed
 * buffer and every pooled buffer is "fixed"), carved on demand into buffers
 * of power-of-two size classes from 4 KiB to 1 MiB, each aligned to
 * SEDA_FILE_BUFFER_ALIGN. A freed buffer goes to its class's free list and is
 * never coalesced: disk I/O uses a few sizes over and over. A side table of
 * one byte per 4 KiB page says which class starts where, so free needs no
 * length and no header in front of the (aligned) buffer. Larger buffers, and
 * any that no longer fit in the arena, come from the heap.
 *
 * A mutex guards the lists: an allocation costs less than a system call, and
 * there is at most one per request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "file_internal.h"

#define PAGE SEDA_FILE_BUFFER_ALIGN
#define MIN_CLASS_BYTES ((size_t)PAGE)
#define MAX_LEN ((size_t)1 << 30)

int seda__file_buffers_init(struct seda__file_buffers *b, size_t arena_bytes)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    arena_bytes = (arena_bytes + PAGE - 1) & ~(size_t)(PAGE - 1);
    if (arena_bytes == 0)
        return 0;
    void *p = mmap(NULL, arena_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    b->class_of = calloc(arena_bytes / PAGE, 1);
    if (!b->class_of) {
        munmap(p, arena_bytes);
        return -ENOMEM;
    }
    b->base = p;
    b->size = arena_bytes;
    return 0;
}

void seda__file_buffers_fini(struct seda__file_buffers *b)
{
    if (b->base)
        munmap(b->base, b->size);
    free(b->class_of);
    pthread_mutex_destroy(&b->lock);
    memset(b, 0, sizeof *b);
}

/* The class of a length: the smallest 4 KiB << c holding it, or -1 above 1 MiB. */
static int class_for(size_t len)
{
    size_t sz = MIN_CLASS_BYTES;
    for (int c = 0; c < SEDA__FILE_CLASSES; c++, sz <<= 1)
        if (len <= sz)
            return c;
    return -1;
}

void *seda__file_buffers_alloc(struct seda__file_buffers *b, size_t len)
{
    if (len == 0 || len > MAX_LEN)
        return NULL;
    int c = class_for(len);
    void *buf = NULL;
    if (c >= 0 && b->base) {
        size_t sz = MIN_CLASS_BYTES << c;
        pthread_mutex_lock(&b->lock);
        buf = b->free_list[c];
        if (buf) {
            memcpy(&b->free_list[c], buf, sizeof(void *));
        } else if (b->size - b->used >= sz) {
            buf = b->base + b->used;
            b->class_of[b->used / PAGE] = (uint8_t)(c + 1);
            b->used += sz;
        }
        pthread_mutex_unlock(&b->lock);
    }
    if (!buf) {
        size_t rounded = (len + PAGE - 1) & ~(size_t)(PAGE - 1);
        if (posix_memalign(&buf, PAGE, rounded) != 0)
            return NULL;
        atomic_fetch_add_explicit(&b->heap, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&b->outstanding, 1, memory_order_relaxed);
    return buf;
}

void seda__file_buffers_free(struct seda__file_buffers *b, void *buf)
{
    if (!buf)
        return;
    atomic_fetch_sub_explicit(&b->outstanding, 1, memory_order_relaxed);
    unsigned char *p = buf;
    if (b->base && p >= b->base && p < b->base + b->size) {
        size_t page = (size_t)(p - b->base) / PAGE;
        int c = b->class_of[page] -
                1; /* written once, under the lock, before the buffer was handed out */
        pthread_mutex_lock(&b->lock);
        memcpy(buf, &b->free_list[c], sizeof(void *));
        b->free_list[c] = buf;
        pthread_mutex_unlock(&b->lock);
        return;
    }
    atomic_fetch_sub_explicit(&b->heap, 1, memory_order_relaxed);
    free(buf);
}
