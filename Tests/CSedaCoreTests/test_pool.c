/*
 * Dedicated pools: threads named after their stage, grown and shrunk while
 * the stage runs.
 */
#include "runtime_test.h"

/* How many of this process's threads carry `name` (as `top -H` shows them). */
static int threads_named(const char *name)
{
    char path[300], comm[32];
    int n = 0;
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
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            if (strcmp(comm, name) == 0)
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* ---- a dedicated pool grows and shrinks while running -------------------- */

static void test_pool_resize(void)
{
    reset_counts();
    seda_runtime_t *rt;
    CHECK_OK(seda_runtime_create(&rt, NULL));
    _Atomic uint64_t consumed = 0;
    seda_stage_options_t o = { .name = "pool",
                               .handler = consume_all,
                               .ctx = &consumed,
                               .drop = drop_cb,
                               .thread_manager = SEDA_THREADS_DEDICATED,
                               .concurrency = 1,
                               .max_threads = 4 };
    seda_stage_t *s;
    CHECK_OK(seda_stage_create(rt, &o, &s));
    seda_stage_stats_t st;
    seda_stage_stats(s, &st);
    CHECK_EQ(st.threads, 1);
    /* Threads are named after their stage or CPU. */
    CHECK_EQ(threads_named("pool"), 1);
    CHECK_EQ(threads_named("seda-cpu0"), 1);
    CHECK_RC(seda_stage_set_threads(s, 5), -EINVAL);
    CHECK_RC(seda_stage_set_threads(s, 0), -EINVAL);
    CHECK_OK(seda_stage_set_threads(s, 4));
    seda_stage_stats(s, &st);
    CHECK_EQ(st.threads, 4);
    CHECK_EQ(threads_named("pool"), 4);
    for (uint64_t i = 0; i < 1000; i++)
        enqueue_retry(s, ev_new(i, 0));
    CHECK_OK(seda_stage_set_threads(s, 2));
    WAIT_UNTIL((seda_stage_stats(s, &st), st.threads == 2));
    CHECK_OK(seda_stage_set_threads(s, 3));
    WAIT_UNTIL(atomic_load(&consumed) == 1000);
    seda_stage_stats(s, &st);
    CHECK_EQ(st.threads, 3);
    CHECK_EQ(st.concurrency, 3);
    seda_stage_t *shared =
        make_stage(rt, "shared", consume_all, &consumed, SEDA_THREADS_SHARED, 1, 8);
    CHECK_RC(seda_stage_set_threads(shared, 2), -ENOTSUP);
    seda_stage_release(shared);
    seda_stage_release(s);
    seda_runtime_destroy(rt);
    CHECK_EQ(atomic_load(&freed), 1000);
}

int main(void)
{
    test_pool_resize();
    puts("pool: ok");
    return 0;
}
