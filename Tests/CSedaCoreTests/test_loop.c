/*
 * The worker loops of the shared threads (loop.h), over every poller
 * backend: stages bound to one thread run only there; idle loops sleep in
 * their poller and stay asleep; posted work runs on the loop, in order; a
 * watched descriptor's readiness and the loop's own timers are handled on
 * the loop's thread.
 */
#include "runtime_test.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "loop.h"

#define THREADS 2

static int backend; /* the poller under test */

static seda_runtime_t *make_runtime(void)
{
    seda_runtime_options_t o = { .cpu_threads = THREADS, .poller = backend };
    seda_runtime_t *rt = NULL;
    CHECK_OK(seda_runtime_create(&rt, &o));
    return rt;
}

/* ---- bound stages -------------------------------------------------------------- */

struct bound_ctx {
    seda_runtime_t *rt;
    int home;           /* the thread the stage is bound to */
    seda_stage_t *next; /* forward here, or free when NULL */
    _Atomic uint64_t seen, wrong_thread;
};

static int bound_handler(void *ctx, void **events, size_t n)
{
    struct bound_ctx *c = ctx;
    if (seda_runtime_thread_index(c->rt) != c->home)
        atomic_fetch_add(&c->wrong_thread, n);
    atomic_fetch_add(&c->seen, n);
    for (size_t i = 0; i < n; i++) {
        if (!c->next || seda_stage_enqueue(c->next, events[i]) != 0)
            ev_free(events[i]);
    }
    return 0;
}

static seda_stage_t *make_bound(seda_runtime_t *rt, const char *name, struct bound_ctx *c,
                                uint32_t thread)
{
    seda_stage_options_t o = { .name = name,
                               .handler = bound_handler,
                               .ctx = c,
                               .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_SHARED,
                               .queue_capacity = 4096,
                               .bind_to_thread = 1,
                               .thread_index = thread };
    seda_stage_t *s = NULL;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    return s;
}

/* A dedicated stage that forwards into the stage its ctx names: enqueues
 * from a thread that is not a shared one. */
static int relay_handler(void *ctx, void **events, size_t n)
{
    seda_stage_t *to = ctx;
    for (size_t i = 0; i < n; i++)
        while (seda_stage_enqueue(to, events[i]) == -EAGAIN)
            sched_yield();
    return 0;
}

static void test_bound_stages_stay_home(void)
{
    reset_counts();
    seda_runtime_t *rt = make_runtime();
    struct bound_ctx first[THREADS], second[THREADS];
    seda_stage_t *a[THREADS], *b[THREADS];
    for (int i = 0; i < THREADS; i++) {
        char name[16];
        second[i] = (struct bound_ctx){ .rt = rt, .home = i };
        snprintf(name, sizeof name, "b%d", i);
        b[i] = make_bound(rt, name, &second[i], (uint32_t)i);
        first[i] = (struct bound_ctx){ .rt = rt, .home = i, .next = b[i] };
        snprintf(name, sizeof name, "a%d", i);
        a[i] = make_bound(rt, name, &first[i], (uint32_t)i);
    }
    /* From an outside thread, and from a dedicated pool. */
    seda_stage_t *relay =
        make_stage(rt, "relay", relay_handler, a[1], SEDA_THREADS_DEDICATED, 1, 16);
    enum { N = 20000 };
    for (uint64_t k = 0; k < N; k++) {
        seda_stage_t *to = k % 3 == 0 ? a[0] : k % 3 == 1 ? a[1] : relay;
        struct ev *e = ev_new(k, 0);
        while (seda_stage_enqueue(to, e) == -EAGAIN)
            sched_yield();
    }
    WAIT_UNTIL(atomic_load(&freed) == N);
    uint64_t total = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(atomic_load(&first[i].wrong_thread), 0);
        CHECK_EQ(atomic_load(&second[i].wrong_thread), 0);
        CHECK_EQ(atomic_load(&first[i].seen), atomic_load(&second[i].seen));
        total += atomic_load(&second[i].seen);
    }
    CHECK_EQ(total, N);
    CHECK_EQ(seda_runtime_thread_index(rt), -1); /* not a shared thread */
    seda_stage_release(relay);
    for (int i = 0; i < THREADS; i++) {
        seda_stage_release(a[i]);
        seda_stage_release(b[i]);
    }
    CHECK_OK(seda_runtime_shutdown(rt, SEDA_SHUTDOWN_DRAIN, -1));
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&dropped), 0);
}

static int nop_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        ev_free(events[i]);
    return 0;
}

static void test_bind_is_checked(void)
{
    seda_runtime_t *rt = make_runtime();
    seda_stage_options_t o = { .name = "x",
                               .handler = nop_handler,
                               .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_SHARED,
                               .bind_to_thread = 1,
                               .thread_index = THREADS };
    seda_stage_t *s = NULL;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL); /* no such thread */
    o.thread_index = 0;
    o.concurrency = 2;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL); /* one thread runs it */
    o.concurrency = 1;
    o.thread_manager = SEDA_THREADS_DEDICATED;
    CHECK_RC(seda_stage_create(rt, &o, &s), -EINVAL); /* not a shared stage */
    o.thread_manager = SEDA_THREADS_SHARED;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    seda_stage_release(s);
    seda_runtime_destroy(rt);
}

/* ---- sleeping ------------------------------------------------------------------- */

static uint64_t sum_stat(seda_runtime_t *rt, size_t offset)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < seda_runtime_cpu_threads(rt); i++) {
        seda_loop_stats_t st;
        CHECK_OK(seda_runtime_loop_stats(rt, i, &st));
        t += *(uint64_t *)((char *)&st + offset);
    }
    return t;
}

/* Every loop flagged asleep with no wake pending in its eventfd, and every
 * shared thread blocked in the kernel. (The flag alone is set just before
 * the poll: a loop that had been woken while it found work on its own
 * keeps that wake in its eventfd, and its next poll returns at once.) */
static bool all_asleep(seda_runtime_t *rt)
{
    uint32_t n = seda_runtime_cpu_threads(rt);
    for (uint32_t i = 0; i < n; i++) {
        struct seda__loop *l = seda__loop_of(rt, i);
        struct pollfd p = { .fd = l->wake_fd, .events = POLLIN };
        if (atomic_load(&l->sleeping) == 0 || poll(&p, 1, 0) != 0)
            return false;
    }
    return threads_sleeping("seda-cpu") == (int)n;
}

static void test_idle_loops_sleep(void)
{
    reset_counts();
    seda_runtime_t *rt = make_runtime();
    seda_stage_t *s = make_stage(rt, "s", nop_handler, NULL, SEDA_THREADS_SHARED, 1, 64);
    for (uint64_t k = 0; k < 1000; k++) {
        struct ev *e = ev_new(k, 0);
        while (seda_stage_enqueue(s, e) == -EAGAIN)
            sched_yield();
    }
    WAIT_UNTIL(atomic_load(&freed) == 1000);
    WAIT_UNTIL(all_asleep(rt));
    /* Asleep means blocked in the poller: nothing is polled, however long
     * we look, until something wakes a loop. */
    uint64_t polls = sum_stat(rt, offsetof(seda_loop_stats_t, polls));
    struct timespec ts = { 0, 50000000 };
    nanosleep(&ts, NULL);
    CHECK_EQ(sum_stat(rt, offsetof(seda_loop_stats_t, polls)), polls);
    CHECK(all_asleep(rt));
    /* One event wakes one loop, with one eventfd write. */
    uint64_t wakeups = sum_stat(rt, offsetof(seda_loop_stats_t, wakeups));
    CHECK_OK(seda_stage_enqueue(s, ev_new(1, 0)));
    WAIT_UNTIL(atomic_load(&freed) == 1001);
    CHECK_EQ(sum_stat(rt, offsetof(seda_loop_stats_t, wakeups)), wakeups + 1);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
}

/* ---- the loop's own API: posts, watchers, timers ------------------------------------ */

struct probe {
    struct seda__task task;
    struct seda__watcher watcher;
    struct seda__loop_timer timer;
    seda_runtime_t *rt;
    int expect_thread;
    _Atomic int wrong_thread, ran, ready, fired, cancelled;
    int order[64];
    _Atomic int n_order;
};

static void probe_check_thread(struct probe *p)
{
    if (seda_runtime_thread_index(p->rt) != p->expect_thread)
        atomic_fetch_add(&p->wrong_thread, 1);
}

struct numbered {
    struct seda__task task;
    struct probe *p;
    int n;
};

static void numbered_run(struct seda__loop *l, struct seda__task *t)
{
    (void)l;
    struct numbered *x = (struct numbered *)t;
    probe_check_thread(x->p);
    /* Only the loop's thread writes: publish each entry after writing it. */
    int i = atomic_load(&x->p->n_order);
    x->p->order[i] = x->n;
    atomic_store(&x->p->n_order, i + 1);
}

static void watcher_ready(struct seda__loop *l, struct seda__watcher *w, uint32_t events)
{
    struct probe *p = (struct probe *)((char *)w - offsetof(struct probe, watcher));
    probe_check_thread(p);
    if (events & SEDA_POLLER_IN) {
        char c;
        while (read(w->fd, &c, 1) == 1)
            atomic_fetch_add(&p->ready, 1);
    }
    (void)l;
}

static void timer_fire(struct seda__loop *l, struct seda__loop_timer *t, bool cancelled)
{
    (void)l;
    struct probe *p = (struct probe *)((char *)t - offsetof(struct probe, timer));
    probe_check_thread(p);
    atomic_fetch_add(cancelled ? &p->cancelled : &p->fired, 1);
}

/* Runs on the loop: watch the pipe and arm the timer. */
static void setup_run(struct seda__loop *l, struct seda__task *t)
{
    struct probe *p = (struct probe *)t;
    probe_check_thread(p);
    CHECK_OK(seda__loop_watch(l, &p->watcher, SEDA_POLLER_IN));
    CHECK_OK(
        seda__loop_timer_start(l, &p->timer, seda_clock_now(seda_runtime_clock(p->rt)) + 5000000));
    atomic_store(&p->ran, 1);
}

static void teardown_run(struct seda__loop *l, struct seda__task *t)
{
    struct probe *p = (struct probe *)t;
    CHECK_OK(seda__loop_unwatch(l, &p->watcher));
    atomic_store(&p->ran, 2);
}

static void test_posts_watchers_timers(void)
{
    seda_runtime_t *rt = make_runtime();
    struct probe p = { .rt = rt, .expect_thread = 1 };
    int fds[2];
    CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    p.watcher = (struct seda__watcher){ .on_ready = watcher_ready, .fd = fds[0] };
    p.timer.fire = timer_fire;
    struct seda__loop *l = seda__loop_of(rt, 1);
    p.task.run = setup_run;
    seda__loop_post(l, &p.task);
    WAIT_UNTIL(atomic_load(&p.ran) == 1);
    /* Posted work runs in order. */
    struct numbered nums[64];
    for (int i = 0; i < 64; i++) {
        nums[i] = (struct numbered){ .task.run = numbered_run, .p = &p, .n = i };
        seda__loop_post(l, &nums[i].task);
    }
    WAIT_UNTIL(atomic_load(&p.n_order) == 64);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(p.order[i], i);
    /* Readiness of a watched descriptor, on the loop's thread. */
    CHECK(write(fds[1], "abc", 3) == 3);
    WAIT_UNTIL(atomic_load(&p.ready) == 3);
    /* The loop's own timer. */
    WAIT_UNTIL(atomic_load(&p.fired) == 1);
    p.task.run = teardown_run;
    seda__loop_post(l, &p.task);
    WAIT_UNTIL(atomic_load(&p.ran) == 2);
    CHECK_EQ(atomic_load(&p.wrong_thread), 0);
    CHECK_EQ(atomic_load(&p.cancelled), 0);
    /* A timer still pending when the runtime goes is handed back, once. */
    p.task.run = setup_run;
    seda__loop_post(l, &p.task);
    WAIT_UNTIL(atomic_load(&p.ran) == 1);
    seda_runtime_destroy(rt); /* the timer is 5 ms away: it is pending now or fired */
    CHECK_EQ(atomic_load(&p.fired) + atomic_load(&p.cancelled), 2);
    close(fds[0]);
    close(fds[1]);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int tested = 0;
    for (int b = SEDA_POLLER_SELECT; b < SEDA_POLLER_BACKEND_END; b++) {
        if (only && seda_poller_backend_parse(only) != b)
            continue;
        backend = b;
        fprintf(stderr, "test_loop: %s\n", seda_poller_backend_name(b));
        test_bind_is_checked();
        test_bound_stages_stay_home();
        test_idle_loops_sleep();
        test_posts_watchers_timers();
        tested++;
    }
    CHECK(tested > 0);
    return 0;
}
