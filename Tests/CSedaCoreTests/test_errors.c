/*
 * The error table: every code in SEDA_ERRNO_MAP has its name and message,
 * either sign; odd ints (INT_MIN, unknown codes) get a description without
 * overflowing; and every -EXXX the core's sources return is in the table.
 * argv[1]: the directory of the core's sources (Sources/CSedaCore).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "test.h"

struct entry {
    int code;
    const char *name, *message;
};

#define SEDA_ENTRY(n, m) { n, #n, m },
static const struct entry table[] = { SEDA_ERRNO_MAP(SEDA_ENTRY) };
#undef SEDA_ENTRY
#define TABLE_LEN (sizeof table / sizeof table[0])

static void test_table(void)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct entry *e = &table[i];
        CHECK(strcmp(seda_err_name(-e->code), e->name) == 0);
        CHECK(strcmp(seda_err_name(e->code), e->name) == 0);
        CHECK(strcmp(seda_strerror(-e->code), e->message) == 0);
        CHECK(strcmp(seda_strerror(e->code), e->message) == 0);
        for (size_t j = 0; j < i; j++)
            CHECK(table[j].code != e->code); /* no alias (EWOULDBLOCK, EOPNOTSUPP) */
    }
    /* The walker bindings use: the same codes, in order, then 0. */
    for (size_t i = 0; i < TABLE_LEN; i++)
        CHECK_EQ(seda_err_code_at(i), table[i].code);
    CHECK_EQ(seda_err_code_at(TABLE_LEN), 0);
    CHECK_EQ(seda_err_code_at((size_t)-1), 0);
    CHECK(strcmp(seda_err_name(0), "OK") == 0);
    CHECK(strcmp(seda_strerror(0), "success") == 0);
}

static void test_odd_codes(void)
{
    /* INT_MIN has no positive counterpart: negating it overflowed. */
    CHECK(strcmp(seda_strerror(INT_MIN), "unknown error") == 0);
    CHECK(strcmp(seda_err_name(INT_MIN), "UNKNOWN") == 0);
    CHECK(strcmp(seda_strerror(INT_MAX), "unknown error") == 0);
    CHECK(strcmp(seda_err_name(-INT_MAX), "UNKNOWN") == 0);
    /* Outside the table: the C library's description, still not "unknown". */
    CHECK(strcmp(seda_err_name(-EROFS), "UNKNOWN") == 0);
    CHECK(strcmp(seda_strerror(-EROFS), "unknown error") != 0);
}

/* Is `name` (e.g. "EPIPE") in the table? */
static int in_table(const char *name)
{
    for (size_t i = 0; i < TABLE_LEN; i++)
        if (strcmp(table[i].name, name) == 0)
            return 1;
    return 0;
}

/* Every "-EXXX" in the core's .c files names a code of the table, but for
 * comparisons ("rc == -ETIME": a kernel's answer the core interprets, not a
 * code it returns). */
static void test_core_codes_in_table(const char *dir)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *de;
    int files = 0, codes = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 3 || strcmp(de->d_name + len - 2, ".c") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL);
        files++;
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            for (char *p = strstr(line, "-E"); p; p = strstr(p + 1, "-E")) {
                char name[32];
                size_t n = 0;
                for (const char *q = p + 1; n < sizeof name - 1 && *q >= 'A' && *q <= 'Z'; q++)
                    name[n++] = *q;
                name[n] = '\0';
                if (n < 3)
                    continue;
                const char *before = p;
                while (before > line && before[-1] == ' ')
                    before--;
                if (before - line >= 2 && before[-1] == '=' &&
                    (before[-2] == '=' || before[-2] == '!'))
                    continue;
                codes++;
                if (!in_table(name)) {
                    fprintf(stderr, "%s returns -%s, which is not in SEDA_ERRNO_MAP\n", path, name);
                    exit(1);
                }
            }
        }
        fclose(f);
    }
    closedir(d);
    CHECK(files > 10);
    CHECK(codes > 50);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <Sources/CSedaCore>\n", argv[0]);
        return 1;
    }
    test_table();
    test_odd_codes();
    test_core_codes_in_table(argv[1]);
    puts("errors: ok");
    return 0;
}
