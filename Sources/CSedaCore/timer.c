/*
 * Timers: a hierarchical timing wheel under one mutex, driven by polls.
 *
 * Wheel. Time is counted in ticks of `res` ns from `origin` (the clock's time
 * at creation). A timer's expiry tick is ceil((deadline - origin) / res), so
 * it never fires early. Level k has 64 slots; slot s of level k holds timers
 * whose expiry agrees with `now_tick` above digit k (digits are 6 bits) and
 * whose digit k is s, which is greater than now_tick's digit k: the level is
 * the highest digit in which expiry and now_tick differ (the placement of
 * William Ahern's timeout.c). Hence every occupied slot lies ahead of now,
 * and the slot's "processing point" (now_tick's higher digits, then s, then
 * zeros) is the earliest expiry it can hold. Eleven levels of 6 bits cover
 * every 64-bit tick count.
 *
 * Advancing. A poll moves now_tick forward to each next processing point in
 * turn (the minimum over levels of the first occupied slot above the current
 * digit, found with one ctz per level), never skipping one, and at each point
 * empties the slots whose point it is: timers expiring exactly there are due,
 * the rest are re-placed relative to the new now_tick, necessarily on a lower
 * level. A timer thus moves at most once per level, and when it is due it is
 * due at exactly its expiry tick: the due timers of one step all share one
 * tick, are sorted by (deadline, sequence) among themselves, and the steps
 * come in tick order, so the whole batch is in deadline order with FIFO ties.
 *
 * Due and retry lists. A timer added with its expiry tick already reached
 * waits on the due list (unsorted); a timer whose target was full, and those
 * held back behind it, wait on the retry list, which stays sorted because
 * they are put there in batch order. A poll starts its batch with the two
 * merged. Their deadlines are all at or before now_tick, hence before
 * anything still in the wheel, so the batch stays ordered.
 *
 * Entries. One 64-byte cache line per timer, from a pool of chunks of
 * geometrically growing size (64, 128, 256, ... entries) that never move, so
 * links are plain pointers and an id's index finds its entry with one clz.
 * Lists are circular and doubly linked through sentinels, so cancel unlinks in
 * O(1); an entry unlinked from a slot learns that the slot emptied when its
 * two neighbours are the same node (the sentinel), whose address gives the
 * level and slot whose occupancy bit to clear.
 *
 * Ids are (generation << 32) | index. The generation (24 bits, from 1) goes up
 * each time an entry is freed; an entry whose generation is exhausted is
 * retired (never reused), so an id is never reused and never 0.
 *
 * Delivery without the lock. A poll collects its batch under the lock,
 * marking each entry INFLIGHT, delivers with the lock released, then settles
 * the outcomes under the lock. While INFLIGHT an entry can still be cancelled:
 * cancel and the poller race with a compare-and-swap on the entry's state
 * (INFLIGHT -> CANCELLED or INFLIGHT -> DELIVERING); the winner owns the
 * event. The CAS decides ownership only; the entry's fields were written
 * under the lock before the poller collected them, and are not written again
 * until the poller settles under the lock, so the CAS needs no ordering of
 * its own (relaxed).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "seda/queue.h"
#include "seda/timer.h"

#define LEVEL_BITS 6
#define SLOTS 64
#define LEVELS 11 /* 11 * 6 = 66 >= 64 bits of ticks */

/* Pool: chunk k holds FIRST_CHUNK << k entries and starts at index
 * FIRST_CHUNK * (2^k - 1); 27 chunks reach the 32-bit index space. */
#define FIRST_CHUNK 64
#define POOL_CHUNKS 27

#define STATE_BITS 8
#define STATE_MASK ((1u << STATE_BITS) - 1)
#define GEN_MAX ((1u << (32 - STATE_BITS)) - 1)

/* poll_abs's "no timer is pending". A pending timer may have work at
 * INT64_MAX too (a deadline at the end of the clock); poll_abs says which. */
#define NO_WORK INT64_MAX

/* Never more distinct full targets remembered per poll; past it, every
 * remaining timer of the batch waits for the next poll (order is kept). */
#define MAX_BLOCKED 16

enum entry_state {
    ST_FREE = 0,
    ST_WHEEL,      /* in a wheel slot */
    ST_DUE,        /* on the due or the retry list */
    ST_INFLIGHT,   /* collected by a poll, not yet handed to deliver */
    ST_DELIVERING, /* the poller owns it: deliver is running or has run */
    ST_CANCELLED,  /* cancelled while INFLIGHT; the poller frees it */
    ST_HANDING,    /* finished, its event being handed to a callback */
};

struct link {
    struct link *next, *prev;
};

struct entry {
    union {
        struct link link; /* WHEEL, DUE */
        struct {          /* batch, free list, hand-back chains */
            struct entry *next;
            intptr_t code; /* deliver's return, once DELIVERING */
        } b;
    };
    int64_t deadline;
    uint64_t seq; /* add order: breaks deadline ties */
    void *target;
    void *event;
    seda_timer_deliver_fn deliver;
    _Atomic uint32_t gs; /* generation << STATE_BITS | state */
    uint32_t index;
};
_Static_assert(sizeof(struct entry) <= SEDA__CACHELINE, "one cache line per timer");

struct seda_timers {
    pthread_mutex_t mu; /* the wheel, the pool, the counters, the thread state */

    /* Wheel. */
    uint64_t now_tick;
    uint64_t occupied[LEVELS];
    struct link slots[LEVELS][SLOTS];
    struct link due;   /* added already due; unsorted */
    struct link retry; /* put off by a full target; sorted */
    uint64_t next_seq;

    /* Pool. */
    struct entry *chunks[POOL_CHUNKS];
    unsigned nchunks;
    uint64_t allocated; /* entries carved from chunks: indices below this exist */
    struct entry *free_list;

    /* Counters. */
    uint64_t pending, added, fired, retries, undeliverable, cancelled;

    /* Configuration, read-only after create. */
    const seda_clock_t *clock;
    bool real_clock;
    int64_t origin, res;
    /* The tick the clock reaches when it reads INT64_MAX, its last time: one
     * past the last tick boundary, so that a deadline after that boundary
     * (which no boundary follows) falls due exactly at the clock's end. */
    uint64_t end_tick;
    seda_timer_undeliverable_fn undeliverable_fn;
    void *ctx;

    /* Serializes polls: a batch is delivered whole before the next starts. */
    pthread_mutex_t poll_mu;

    /* The timer thread. */
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    pthread_t thread;
    bool started, stop, sleeping;
    int64_t wake_at; /* when the thread next polls; adds lower it */
    char thread_name[16];
};

/* ---- small helpers -------------------------------------------------------- */

static inline unsigned state_of(uint32_t gs)
{
    return gs & STATE_MASK;
}
static inline uint32_t gen_of(uint32_t gs)
{
    return gs >> STATE_BITS;
}

/* Under the lock. A plain store cannot lose a race: the only lock-free write
 * is the poller's CAS on INFLIGHT entries between collecting and settling,
 * and in that window nobody else stores to them (cancel CASes too). */
static inline void set_state(struct entry *e, unsigned st)
{
    uint32_t gs = atomic_load_explicit(&e->gs, memory_order_relaxed);
    atomic_store_explicit(&e->gs, (gs & ~STATE_MASK) | st, memory_order_relaxed);
}

static inline unsigned load_state(struct entry *e)
{
    return state_of(atomic_load_explicit(&e->gs, memory_order_relaxed));
}

static inline void list_init(struct link *s)
{
    s->next = s->prev = s;
}
static inline void list_unlink(struct link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
}
static inline bool list_empty(const struct link *s)
{
    return s->next == s;
}

static inline void list_push(struct link *s, struct link *l)
{
    /* At the head: order inside a slot does not matter (due timers are
     * sorted), and the head is the most recently touched entry, so likely in
     * cache. */
    l->next = s->next;
    l->prev = s;
    s->next->prev = l;
    s->next = l;
}

static inline void list_push_back(struct link *s, struct link *l)
{
    l->next = s;
    l->prev = s->prev;
    s->prev->next = l;
    s->prev = l;
}

/* Moves every node of src to the end of dst; src is left empty. */
static inline void list_splice(struct link *dst, struct link *src)
{
    if (list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    list_init(src);
}

static inline bool before(const struct entry *a, const struct entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static struct entry *merge(struct entry *a, struct entry *b)
{
    struct entry *head = NULL, **tail = &head;
    while (a && b) {
        if (before(b, a)) {
            *tail = b;
            tail = &b->b.next;
            b = b->b.next;
        } else {
            *tail = a;
            tail = &a->b.next;
            a = a->b.next;
        }
    }
    *tail = a ? a : b;
    return head;
}

/* Bottom-up merge sort of a chain by (deadline, seq): O(n log n), no memory.
 * bins[i] holds a sorted run of 2^i entries. */
static struct entry *sort_chain(struct entry *list)
{
    if (!list || !list->b.next)
        return list;
    struct entry *bins[64] = { NULL };
    unsigned top = 0;
    while (list) {
        struct entry *x = list;
        list = list->b.next;
        x->b.next = NULL;
        unsigned i = 0;
        for (; bins[i]; i++) {
            x = merge(bins[i], x);
            bins[i] = NULL;
        }
        bins[i] = x;
        if (i > top)
            top = i;
    }
    struct entry *r = NULL;
    for (unsigned i = 0; i <= top; i++)
        if (bins[i])
            r = merge(bins[i], r);
    return r;
}

/* ---- time ------------------------------------------------------------------ */

/* The first tick at or after a deadline: firing there is never early. At
 * most end_tick (a deadline is at most INT64_MAX). */
static inline uint64_t expiry_tick(const seda_timers_t *t, int64_t deadline)
{
    if (deadline <= t->origin)
        return 0;
    uint64_t d = (uint64_t)(deadline - t->origin); /* origin >= 0: no overflow */
    uint64_t r = (uint64_t)t->res;
    return d / r + (d % r != 0);
}

/* The last tick at or before a clock time; end_tick at the clock's end. */
static inline uint64_t tick_at(const seda_timers_t *t, int64_t now)
{
    if (now == INT64_MAX)
        return t->end_tick;
    return now <= t->origin ? 0 : (uint64_t)(now - t->origin) / (uint64_t)t->res;
}

/* The clock time a tick starts: INT64_MAX for a tick past the last boundary
 * (end_tick), which the clock reaches only at its end. */
static inline int64_t tick_time(const seda_timers_t *t, uint64_t tick)
{
    uint64_t room = (uint64_t)(INT64_MAX - t->origin);
    if (tick > room / (uint64_t)t->res)
        return INT64_MAX;
    return t->origin + (int64_t)(tick * (uint64_t)t->res);
}

static inline int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* ---- pool ------------------------------------------------------------------ */

static inline struct entry *entry_at(const seda_timers_t *t, uint32_t index)
{
    uint64_t q = ((uint64_t)index / FIRST_CHUNK) + 1;
    unsigned k = 63u - (unsigned)__builtin_clzll(q);
    return &t->chunks[k][index - (((uint64_t)1 << k) - 1) * FIRST_CHUNK];
}

static int grow_pool(seda_timers_t *t)
{
    unsigned k = t->nchunks;
    if (k == POOL_CHUNKS)
        return -ENOMEM;
    uint64_t first = (((uint64_t)1 << k) - 1) * FIRST_CHUNK;
    uint64_t n = (uint64_t)FIRST_CHUNK << k;
    if (first + n > UINT32_MAX) /* index UINT32_MAX is never used */
        n = UINT32_MAX - first;
    struct entry *c = seda__alloc_aligned((size_t)n * sizeof(struct entry));
    if (!c)
        return -ENOMEM;
    /* Pushed last to first, so the lowest index is taken first. */
    for (uint64_t i = n; i-- > 0;) {
        c[i].index = (uint32_t)(first + i);
        atomic_init(&c[i].gs, (1u << STATE_BITS) | ST_FREE);
        c[i].b.next = t->free_list;
        t->free_list = &c[i];
    }
    t->chunks[k] = c;
    t->nchunks = k + 1;
    t->allocated = first + n;
    return 0;
}

static inline struct entry *alloc_entry(seda_timers_t *t)
{
    if (SEDA__UNLIKELY(!t->free_list) && grow_pool(t) < 0)
        return NULL;
    struct entry *e = t->free_list;
    t->free_list = e->b.next;
    return e;
}

static inline void free_entry(seda_timers_t *t, struct entry *e)
{
    uint32_t gen = gen_of(atomic_load_explicit(&e->gs, memory_order_relaxed));
    if (SEDA__UNLIKELY(gen == GEN_MAX)) {
        /* Retired: a new generation would repeat an id. 64 bytes lost per
         * 16 million reuses of one entry. */
        atomic_store_explicit(&e->gs, (gen << STATE_BITS) | ST_FREE, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&e->gs, ((gen + 1) << STATE_BITS) | ST_FREE, memory_order_relaxed);
    e->b.next = t->free_list;
    t->free_list = e;
}

/* ---- wheel ----------------------------------------------------------------- */

/* expiry > now_tick. */
static inline void wheel_insert(seda_timers_t *t, struct entry *e, uint64_t expiry)
{
    unsigned level = (63u - (unsigned)__builtin_clzll(expiry ^ t->now_tick)) / LEVEL_BITS;
    unsigned slot = (unsigned)(expiry >> (level * LEVEL_BITS)) & (SLOTS - 1);
    list_push(&t->slots[level][slot], &e->link);
    t->occupied[level] |= UINT64_C(1) << slot;
    set_state(e, ST_WHEEL);
}

static inline void wheel_unlink(seda_timers_t *t, struct entry *e)
{
    struct link *prev = e->link.prev;
    list_unlink(&e->link);
    if (prev == e->link.next) {
        /* Only the sentinel is left. */
        size_t i = (size_t)(prev - &t->slots[0][0]);
        t->occupied[i / SLOTS] &= ~(UINT64_C(1) << (i % SLOTS));
    }
}

/*
 * The next tick at which some slot must be processed (UINT64_MAX: the wheel
 * is empty), and in *levels the levels whose slot falls due there.
 */
static uint64_t next_point(const seda_timers_t *t, uint32_t *levels)
{
    uint64_t best = UINT64_MAX, now = t->now_tick;
    uint32_t mask = 0;
    for (unsigned k = 0; k < LEVELS; k++) {
        uint64_t occ = t->occupied[k];
        if (!occ)
            continue;
        unsigned shift = k * LEVEL_BITS;
        unsigned digit = (unsigned)(now >> shift) & (SLOTS - 1);
        /* Occupied slots all lie above the current digit (see the top of the
         * file); the mask only guards the invariant. 2 << 63 is 0 in uint64_t,
         * so digit 63 leaves nothing above. */
        uint64_t above = occ & ~((UINT64_C(2) << digit) - 1);
        if (!above)
            continue;
        unsigned hi = shift + LEVEL_BITS;
        uint64_t p =
            (hi >= 64 ? 0 : (now >> hi) << hi) | ((uint64_t)__builtin_ctzll(above) << shift);
        if (p < best) {
            best = p;
            mask = 1u << k;
        } else if (p == best) {
            mask |= 1u << k;
        }
    }
    *levels = mask;
    return best;
}

struct batch {
    struct entry *head, *tail;
};

static void batch_append(struct batch *b, struct entry *chain)
{
    if (!chain)
        return;
    if (b->tail)
        b->tail->b.next = chain;
    else
        b->head = chain;
    while (chain->b.next)
        chain = chain->b.next;
    b->tail = chain;
}

/* Empties a list into a chain of INFLIGHT entries, in list order. */
static struct entry *take_list(struct link *head)
{
    struct entry *chain = NULL, **tail = &chain;
    for (struct link *l = head->next, *nx; l != head; l = nx) {
        nx = l->next;
        struct entry *e = (struct entry *)l;
        set_state(e, ST_INFLIGHT);
        *tail = e;
        tail = &e->b.next;
    }
    *tail = NULL;
    list_init(head);
    return chain;
}

/* Takes the due and retry lists, merged in order, into the batch. The retry
 * list is sorted already: a target that stays full costs a walk of its
 * backlog per poll, not a sort. */
static void take_due(seda_timers_t *t, struct batch *b)
{
    struct entry *due = list_empty(&t->due) ? NULL : sort_chain(take_list(&t->due));
    struct entry *retry = list_empty(&t->retry) ? NULL : take_list(&t->retry);
    batch_append(b, merge(due, retry));
}

/* Moves now_tick to `target`, appending every timer due by then to the batch. */
static void advance(seda_timers_t *t, uint64_t target, struct batch *b)
{
    for (;;) {
        uint32_t levels;
        uint64_t p = next_point(t, &levels);
        if (p > target)
            break;
        struct link moving;
        list_init(&moving);
        while (levels) {
            unsigned k = (unsigned)__builtin_ctz(levels);
            levels &= levels - 1;
            unsigned s = (unsigned)(p >> (k * LEVEL_BITS)) & (SLOTS - 1);
            list_splice(&moving, &t->slots[k][s]);
            t->occupied[k] &= ~(UINT64_C(1) << s);
        }
        t->now_tick = p;
        struct entry *expired = NULL;
        for (struct link *l = moving.next, *nx; l != &moving; l = nx) {
            nx = l->next; /* before l is relinked */
            struct entry *e = (struct entry *)l;
            uint64_t x = expiry_tick(t, e->deadline);
            if (x <= p) {
                set_state(e, ST_INFLIGHT);
                e->b.next = expired;
                expired = e;
            } else {
                wheel_insert(t, e, x); /* on a lower level */
            }
        }
        batch_append(b, sort_chain(expired));
    }
    /* No slot falls due up to target, so jumping there keeps every occupied
     * slot above its level's digit. */
    if (target > t->now_tick)
        t->now_tick = target;
}

/* When the facility next has work (clock time), or NO_WORK when nothing is
 * pending (then *pending is false). Under the lock. */
static int64_t next_work(const seda_timers_t *t, int64_t now, bool *pending)
{
    int64_t next = NO_WORK;
    *pending = t->pending > 0;
    if (!list_empty(&t->due))
        next = now;
    else if (!list_empty(&t->retry))
        next = add_sat(now, t->res);
    uint32_t levels;
    uint64_t p = next_point(t, &levels);
    if (p != UINT64_MAX) {
        int64_t at = tick_time(t, p);
        if (at < next)
            next = at;
    }
    return next;
}

/* ---- delivery -------------------------------------------------------------- */

static void deliver_batch(struct entry *head)
{
    void *blocked[MAX_BLOCKED];
    unsigned nblocked = 0;
    bool all_blocked = false;
    for (struct entry *e = head; e; e = e->b.next) {
        if (SEDA__UNLIKELY(nblocked > 0)) {
            /* A later timer for a full target waits behind the earlier one:
             * left INFLIGHT, settle puts it back on the due list. */
            bool skip = all_blocked;
            for (unsigned i = 0; i < nblocked && !skip; i++)
                skip = blocked[i] == e->target;
            if (skip)
                continue;
        }
        uint32_t gs = atomic_load_explicit(&e->gs, memory_order_relaxed);
        uint32_t expect = (gs & ~STATE_MASK) | ST_INFLIGHT;
        /* Relaxed: see the top of the file. Failure: cancelled meanwhile. */
        if (!atomic_compare_exchange_strong_explicit(&e->gs, &expect,
                                                     (gs & ~STATE_MASK) | ST_DELIVERING,
                                                     memory_order_relaxed, memory_order_relaxed))
            continue;
        int r = e->deliver(e->target, e->event);
        e->b.code = r;
        if (r == -EAGAIN) {
            if (nblocked < MAX_BLOCKED)
                blocked[nblocked++] = e->target;
            else
                all_blocked = true;
        }
    }
}

/* Settles a delivered batch under the lock; returns the undeliverable ones. */
static struct entry *settle(seda_timers_t *t, struct entry *head)
{
    struct entry *und = NULL, **und_tail = &und;
    for (struct entry *e = head, *nx; e; e = nx) {
        nx = e->b.next; /* before e is relinked */
        switch (load_state(e)) {
        case ST_CANCELLED: /* cancel handed the event back and counted it */
            free_entry(t, e);
            break;
        case ST_INFLIGHT: /* deferred behind a full target */
            set_state(e, ST_DUE);
            list_push_back(&t->retry, &e->link);
            t->retries++;
            break;
        default: { /* ST_DELIVERING */
            intptr_t code = e->b.code;
            if (code >= 0) {
                t->fired++;
                t->pending--;
                free_entry(t, e);
            } else if (code == -EAGAIN) {
                set_state(e, ST_DUE);
                list_push_back(&t->retry, &e->link);
                t->retries++;
            } else {
                t->undeliverable++;
                t->pending--;
                set_state(e, ST_HANDING);
                e->b.next = NULL;
                *und_tail = e;
                und_tail = &e->b.next;
            }
            break;
        }
        }
    }
    return und;
}

/* Polls once; returns when the facility next has work (clock time), with
 * *pending false when no timer is pending, and *progress true when some
 * timer was settled for good (delivered or undeliverable). */
static int64_t poll_abs(seda_timers_t *t, bool *pending, bool *progress)
{
    pthread_mutex_lock(&t->poll_mu);
    int64_t now = seda_clock_now(t->clock);
    struct batch b = { NULL, NULL };
    *progress = false;
    pthread_mutex_lock(&t->mu);
    take_due(t, &b);
    advance(t, tick_at(t, now), &b);
    if (!b.head) {
        int64_t next = next_work(t, now, pending);
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_unlock(&t->poll_mu);
        return next;
    }
    pthread_mutex_unlock(&t->mu);

    deliver_batch(b.head);

    pthread_mutex_lock(&t->mu);
    uint64_t settled = t->fired + t->undeliverable;
    struct entry *und = settle(t, b.head);
    *progress = t->fired + t->undeliverable != settled;
    int64_t next = next_work(t, now, pending);
    pthread_mutex_unlock(&t->mu);
    if (und) {
        for (struct entry *e = und; e; e = e->b.next)
            t->undeliverable_fn(t->ctx, e->target, e->event, (int)e->b.code);
        pthread_mutex_lock(&t->mu);
        for (struct entry *e = und, *nx; e; e = nx) {
            nx = e->b.next;
            free_entry(t, e);
        }
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&t->poll_mu);
    return next;
}

int64_t seda_timers_poll(seda_timers_t *t)
{
    if (!t)
        return -1;
    bool pending, progress;
    int64_t next = poll_abs(t, &pending, &progress);
    if (!pending)
        return -1;
    int64_t now = seda_clock_now(t->clock);
    return next > now ? next - now : 0;
}

int seda_timer_deliver_to_queue(void *queue, void *event)
{
    return seda_queue_enqueue((seda_queue_t *)queue, event);
}

/* ---- the timer thread ------------------------------------------------------ */

static void *timer_thread(void *arg)
{
    seda_timers_t *t = arg;
    pthread_setname_np(pthread_self(), t->thread_name);
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        /* From here on, adds lower wake_at instead of only signalling, so an
         * add that lands during the poll is not missed. */
        t->wake_at = NO_WORK;
        pthread_mutex_unlock(&t->mu);
        bool pending, progress;
        int64_t next = poll_abs(t, &pending, &progress);
        pthread_mutex_lock(&t->mu);
        if (next < t->wake_at)
            t->wake_at = next;
        if (t->stop)
            continue;
        /* Work due already: poll again at once, but only while polls get
         * somewhere (a timer settled, or one was added due meanwhile).
         * Otherwise (a full target retried at the clock's end, where "one
         * resolution later" saturates to now) sleep a resolution: no spin. */
        bool due = t->wake_at <= seda_clock_now(t->clock);
        if (due && (progress || !list_empty(&t->due)))
            continue;
        t->sleeping = true;
        if (!due && t->wake_at == NO_WORK && (t->real_clock || t->pending == 0)) {
            /* Nothing pending, or only deadlines at the real clock's end. */
            pthread_cond_wait(&t->cv, &t->mu);
        } else {
            /* The condition variable waits on CLOCK_MONOTONIC. A manual clock
             * moves without telling us: look again every resolution. */
            int64_t until = t->real_clock && !due ? t->wake_at : add_sat(seda__now_ns(), t->res);
            struct timespec ts = { .tv_sec = until / 1000000000, .tv_nsec = until % 1000000000 };
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        t->sleeping = false;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int seda_timers_start(seda_timers_t *t, const char *thread_name)
{
    if (!t)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    if (t->started) {
        pthread_mutex_unlock(&t->mu);
        return -EALREADY;
    }
    snprintf(t->thread_name, sizeof t->thread_name, "%s",
             thread_name ? thread_name : "seda-timers");
    /* Created under the lock: the thread's first act is to take it. */
    int r = seda__thread_start(&t->thread, timer_thread, t);
    if (r == 0)
        t->started = true;
    pthread_mutex_unlock(&t->mu);
    return r;
}

/* ---- create, destroy, add, cancel ------------------------------------------ */

int seda_timers_create(seda_timers_t **out, const seda_clock_t *clock, int64_t resolution_ns,
                       seda_timer_undeliverable_fn undeliverable, void *ctx)
{
    if (!out || !undeliverable || resolution_ns < 0)
        return -EINVAL;
    seda_timers_t *t = seda__alloc_aligned(sizeof *t);
    if (!t)
        return -ENOMEM;
    int r = pthread_mutex_init(&t->mu, NULL);
    if (r)
        goto fail_mu;
    r = pthread_mutex_init(&t->poll_mu, NULL);
    if (r)
        goto fail_poll_mu;
    pthread_condattr_t attr;
    r = pthread_condattr_init(&attr);
    if (r)
        goto fail_attr;
    r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (r == 0)
        r = pthread_cond_init(&t->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (r)
        goto fail_attr;

    for (unsigned k = 0; k < LEVELS; k++)
        for (unsigned s = 0; s < SLOTS; s++)
            list_init(&t->slots[k][s]);
    list_init(&t->due);
    list_init(&t->retry);
    t->clock = clock ? clock : seda_clock_monotonic();
    t->real_clock = t->clock == seda_clock_monotonic();
    t->res = resolution_ns ? resolution_ns : SEDA_TIMERS_DEFAULT_RESOLUTION_NS;
    t->origin = seda_clock_now(t->clock);
    t->end_tick = (uint64_t)(INT64_MAX - t->origin) / (uint64_t)t->res + 1;
    t->undeliverable_fn = undeliverable;
    t->ctx = ctx;
    t->wake_at = NO_WORK;
    *out = t;
    return 0;

fail_attr:
    pthread_mutex_destroy(&t->poll_mu);
fail_poll_mu:
    pthread_mutex_destroy(&t->mu);
fail_mu:
    free(t);
    return -r;
}

/*
 * Unlinks every pending timer (wheel and due list) into a chain, marked
 * HANDING, sorted by deadline if asked. Under the lock, or with no other user.
 */
static struct entry *take_all(seda_timers_t *t, uint64_t *count, bool sorted)
{
    struct entry *chain = NULL;
    uint64_t n = 0;
    for (unsigned k = 0; k <= LEVELS; k++) {
        /* k == LEVELS: the due (bit 0) and retry (bit 1) lists. */
        uint64_t occ = k < LEVELS ? t->occupied[k] : 3;
        while (occ) {
            unsigned s = (unsigned)__builtin_ctzll(occ);
            occ &= occ - 1;
            struct link *head = k < LEVELS ? &t->slots[k][s] : s == 0 ? &t->due : &t->retry;
            for (struct link *l = head->next, *nx; l != head; l = nx) {
                nx = l->next;
                struct entry *e = (struct entry *)l;
                set_state(e, ST_HANDING);
                e->b.next = chain;
                chain = e;
                n++;
            }
            list_init(head);
        }
        if (k < LEVELS)
            t->occupied[k] = 0;
    }
    *count = n;
    return sorted ? sort_chain(chain) : chain;
}

size_t seda_timers_destroy(seda_timers_t *t, seda_timer_hand_back_fn hand_back, void *ctx)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->mu);
    bool started = t->started;
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (started)
        pthread_join(t->thread, NULL);

    uint64_t n;
    struct entry *chain = take_all(t, &n, hand_back != NULL);
    if (hand_back)
        for (struct entry *e = chain; e; e = e->b.next)
            hand_back(ctx, e->target, e->event);
    for (unsigned k = 0; k < t->nchunks; k++)
        free(t->chunks[k]);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->poll_mu);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return (size_t)n;
}

int seda_timers_add_at(seda_timers_t *t, int64_t deadline_ns, seda_timer_deliver_fn deliver,
                       void *target, void *event, seda_timer_id_t *id)
{
    if (!t || !deliver)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    struct entry *e = alloc_entry(t);
    if (!e) {
        pthread_mutex_unlock(&t->mu);
        return -ENOMEM;
    }
    e->deadline = deadline_ns;
    e->seq = t->next_seq++;
    e->target = target;
    e->event = event;
    e->deliver = deliver;
    uint64_t x = expiry_tick(t, deadline_ns);
    int64_t fire_at;
    if (x <= t->now_tick) {
        set_state(e, ST_DUE);
        list_push(&t->due, &e->link);
        fire_at = INT64_MIN;
    } else {
        wheel_insert(t, e, x);
        fire_at = tick_time(t, x);
    }
    t->pending++;
    t->added++;
    /* Wake the thread if this deadline comes first, or if it sleeps with
     * no deadline at all (it had nothing pending: on a manual clock it must
     * now look every resolution, even for a deadline at the clock's end). */
    if (t->started && (fire_at < t->wake_at || t->wake_at == NO_WORK)) {
        if (fire_at < t->wake_at)
            t->wake_at = fire_at;
        if (t->sleeping)
            pthread_cond_signal(&t->cv);
    }
    seda_timer_id_t my_id =
        ((uint64_t)gen_of(atomic_load_explicit(&e->gs, memory_order_relaxed)) << 32) | e->index;
    pthread_mutex_unlock(&t->mu);
    if (id)
        *id = my_id;
    return 0;
}

int seda_timers_add_after(seda_timers_t *t, int64_t delay_ns, seda_timer_deliver_fn deliver,
                          void *target, void *event, seda_timer_id_t *id)
{
    if (!t || delay_ns < 0)
        return -EINVAL;
    return seda_timers_add_at(t, add_sat(seda_clock_now(t->clock), delay_ns), deliver, target,
                              event, id);
}

int seda_timers_cancel(seda_timers_t *t, seda_timer_id_t id, void **event)
{
    if (!t)
        return -EINVAL;
    uint32_t index = (uint32_t)id;
    uint64_t gen = id >> 32;
    if (gen == 0 || gen > GEN_MAX)
        return -ENOENT;
    pthread_mutex_lock(&t->mu);
    if (index >= t->allocated) {
        pthread_mutex_unlock(&t->mu);
        return -ENOENT;
    }
    struct entry *e = entry_at(t, index);
    uint32_t gs = atomic_load_explicit(&e->gs, memory_order_relaxed);
    int r = 0;
    if (gen_of(gs) != gen) {
        r = -ENOENT;
    } else {
        switch (state_of(gs)) {
        case ST_WHEEL: wheel_unlink(t, e); break;
        case ST_DUE: list_unlink(&e->link); break;
        case ST_INFLIGHT: {
            /* Race the poller for it (see the top of the file). The entry
             * stays in the poller's batch; the poller frees it. */
            uint32_t expect = (gs & ~STATE_MASK) | ST_INFLIGHT;
            if (!atomic_compare_exchange_strong_explicit(
                    &e->gs, &expect, (gs & ~STATE_MASK) | ST_CANCELLED, memory_order_relaxed,
                    memory_order_relaxed))
                r = -EBUSY; /* the poller took it first */
            break;
        }
        case ST_DELIVERING: r = -EBUSY; break;
        default: r = -ENOENT; break;
        }
    }
    void *ev = NULL;
    if (r == 0) {
        ev = e->event;
        if (state_of(gs) != ST_INFLIGHT)
            free_entry(t, e);
        t->pending--;
        t->cancelled++;
    }
    pthread_mutex_unlock(&t->mu);
    if (r == 0 && event)
        *event = ev;
    return r;
}

int64_t seda_timers_cancel_all(seda_timers_t *t, seda_timer_hand_back_fn hand_back, void *ctx)
{
    if (!t || !hand_back)
        return -EINVAL;
    uint64_t n;
    pthread_mutex_lock(&t->mu);
    struct entry *chain = take_all(t, &n, true);
    t->pending -= n;
    t->cancelled += n;
    pthread_mutex_unlock(&t->mu);
    if (!chain)
        return 0;
    /* HANDING entries belong to us alone: cancel answers -ENOENT for them. */
    for (struct entry *e = chain; e; e = e->b.next)
        hand_back(ctx, e->target, e->event);
    pthread_mutex_lock(&t->mu);
    for (struct entry *e = chain, *nx; e; e = nx) {
        nx = e->b.next;
        free_entry(t, e);
    }
    pthread_mutex_unlock(&t->mu);
    return (int64_t)n;
}

void seda_timers_stats(const seda_timers_t *t, seda_timers_stats_t *out)
{
    if (!t || !out)
        return;
    seda_timers_t *mt = (seda_timers_t *)t; /* the lock is not part of the value */
    pthread_mutex_lock(&mt->mu);
    out->pending = t->pending;
    out->added = t->added;
    out->fired = t->fired;
    out->retries = t->retries;
    out->undeliverable = t->undeliverable;
    out->cancelled = t->cancelled;
    pthread_mutex_unlock(&mt->mu);
}

const seda_clock_t *seda_timers_clock(const seda_timers_t *t)
{
    return t->clock;
}

int64_t seda_timers_resolution(const seda_timers_t *t)
{
    return t->res;
}
