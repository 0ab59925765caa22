/*
 * seda-baseline: the servers Seda is compared with, written for the
 * comparison as in the seed. Each listens on 127.0.0.1 only, prints
 * "<name>: listening on 127.0.0.1:<port>" on stdout (port 0 picks one), and
 * exits 0 on SIGINT/SIGTERM after printing its totals on stderr.
 */
#include "baseline.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} servers[] = {
    {"asocket-threaded", baseline_asocket_threaded, "aSocket benchmark: thread per connection, blocking I/O"},
    {"echo-uv", baseline_echo_uv, "echo server on libuv (one loop per thread, SO_REUSEPORT)"},
    {"http-pool", baseline_http_pool, "8 KB page, pool of 150 threads, blocking I/O"},
    {"http-thread", baseline_http_thread, "8 KB page, thread per connection, blocking I/O"},
    {"http-epoll", baseline_http_epoll, "8 KB page, the bare one-thread epoll responder"},
    {"gnutella-epoll", baseline_gnutella_epoll, "Gnutella 0.4 router, one thread, bare epoll"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: seda-baseline <server> [options]   (seda-baseline <server> --help)\n");
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        fprintf(f, "  %-17s %s\n", servers[i].name, servers[i].what);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (strcmp(argv[1], servers[i].name) == 0)
            return servers[i].run(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "seda-baseline: unknown server '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
