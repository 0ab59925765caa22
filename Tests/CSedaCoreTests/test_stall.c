/*
 * A handler that blocks on the shared threads is noticed: a batch that runs
 * far longer than its stage's usual (> 100 ms and > 100x the mean) counts in
 * stalled_batches and is reported once per stage through the log hook (by
 * default, a warning on stderr). Handlers here move a manual clock instead of
 * sleeping: the times are exact whatever the machine is doing.
 */
#include <unistd.h>

#include "runtime_test.h"

#define MS INT64_C(1000000)

static seda_clock_t *clock_;

/* Each event carries how long its handling "takes" (ms, in ttl). */
static int takes_ttl_ms(void *ctx, void **events, size_t count)
{
    _Atomic uint64_t *n = ctx;
    for (size_t i = 0; i < count; i++) {
        struct ev *e = events[i];
        seda_clock_manual_advance(clock_, e->ttl * MS);
        ev_free(e);
    }
    atomic_fetch_add(n, count);
    return 0;
}

struct log_record {
    pthread_mutex_t lock;
    int calls, level;
    char stage[64], message[512];
};

static void record_log(void *ctx, int level, const char *stage, const char *message)
{
    struct log_record *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->calls++;
    r->level = level;
    snprintf(r->stage, sizeof r->stage, "%s", stage ? stage : "");
    snprintf(r->message, sizeof r->message, "%s", message);
    pthread_mutex_unlock(&r->lock);
}

/* Runs `ms[i]`-long events through a fresh stage, one batch each. */
static seda_stage_stats_t run(seda_runtime_t *rt, const char *name, int manager, const int *ms,
                              int n)
{
    _Atomic uint64_t done = 0;
    seda_stage_t *s = make_stage(rt, name, takes_ttl_ms, &done, manager, 1, 1);
    for (int i = 0; i < n; i++) {
        enqueue_retry(s, ev_new((uint64_t)i, ms[i]));
        WAIT_UNTIL(atomic_load(&done) == (uint64_t)i + 1); /* one batch at a time */
    }
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_OK(seda_stage_destroy(s, SEDA_SHUTDOWN_DRAIN));
    seda_stage_release(s);
    return st;
}

static void test_stall_reported(void)
{
    reset_counts();
    CHECK_OK(seda_clock_manual_create(&clock_, 1000 * MS));
    struct log_record r = { .lock = PTHREAD_MUTEX_INITIALIZER };
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = clock_, .log = record_log, .log_ctx = &r };
    CHECK_OK(seda_runtime_create(&rt, &ro));

    /* 1 ms batches, then one of 2 s (2000x the mean), then another. */
    int blocking[] = { 1, 1, 1, 1, 2000, 1, 2000 };
    seda_stage_stats_t st = run(rt, "sleepy", SEDA_THREADS_SHARED, blocking, 7);
    CHECK_EQ(st.stalled_batches, 2);
    CHECK_EQ(r.calls, 1); /* logged once per stage */
    CHECK_EQ(r.level, SEDA_LOG_WARNING);
    CHECK(strcmp(r.stage, "sleepy") == 0);
    CHECK(strstr(r.message, "2000.0 ms") != NULL);
    CHECK(strstr(r.message, "SEDA_THREADS_DEDICATED") != NULL);

    /* Every batch over 100 ms with no shorter history stalls the threads:
     * all counted, logged once. */
    int heavy[] = { 150, 150, 150, 150, 150 };
    st = run(rt, "heavy", SEDA_THREADS_SHARED, heavy, 5);
    CHECK_EQ(st.stalled_batches, 5);
    CHECK_EQ(r.calls, 2);
    /* Not stalls: over 100 ms but within 100x the stage's usual (5 ms), or
     * far above the usual but under 100 ms. */
    int variable[] = { 5, 5, 5, 5, 120, 5 };
    st = run(rt, "variable", SEDA_THREADS_SHARED, variable, 6);
    CHECK_EQ(st.stalled_batches, 0);
    int brief[] = { 0, 0, 0, 90 };
    st = run(rt, "brief", SEDA_THREADS_SHARED, brief, 4);
    CHECK_EQ(st.stalled_batches, 0);
    CHECK_EQ(r.calls, 2);

    /* A dedicated pool may block: that is what it is for. */
    st = run(rt, "pool", SEDA_THREADS_DEDICATED, blocking, 7);
    CHECK_EQ(st.stalled_batches, 0);
    CHECK_EQ(r.calls, 2);

    seda_runtime_destroy(rt);
    seda_clock_destroy(clock_);
}

/* Without a hook, the warning goes to stderr. */
static void test_default_log_to_stderr(void)
{
    reset_counts();
    CHECK_OK(seda_clock_manual_create(&clock_, 1000 * MS));
    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .clock = clock_ };
    CHECK_OK(seda_runtime_create(&rt, &ro));
    FILE *capture = tmpfile();
    CHECK(capture != NULL);
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0);
    CHECK(dup2(fileno(capture), 2) == 2);
    int blocking[] = { 1, 500 };
    seda_stage_stats_t st = run(rt, "quiet", SEDA_THREADS_SHARED, blocking, 2);
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    CHECK_EQ(st.stalled_batches, 1);
    char line[1024] = { 0 };
    rewind(capture);
    CHECK(fgets(line, sizeof line, capture) != NULL);
    fclose(capture);
    CHECK(strncmp(line, "seda: warning: stage 'quiet': ", 30) == 0);
    seda_runtime_destroy(rt);
    seda_clock_destroy(clock_);
}

int main(void)
{
    test_stall_reported();
    test_default_log_to_stderr();
    puts("stall: ok");
    return 0;
}
