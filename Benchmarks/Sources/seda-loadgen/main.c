/*
 * seda-loadgen: the benchmark clients in C (epoll), for Seda and its
 * anchors alike. Each prints a human summary and one machine-readable line
 *   result: key=value ...
 * on stdout, progress on stderr, and exits 0 when every transfer completed
 * without error, 1 otherwise, 2 on a usage error. Every run is bounded in time.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double cli_seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        return v;
    if (strcmp(end, "ms") == 0)
        return v / 1000;
    if (strcmp(end, "m") == 0)
        return v * 60;
    return -1;
}

long long cli_count(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0)
        return -1;
    if (*end == 'k' && end[1] == '\0')
        return v * 1000;
    return *end == '\0' ? v : -1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: seda-loadgen <client> [options]   (seda-loadgen <client> --help)\n"
               "  asocket  the seed's aSocket benchmark: C connections x 1000 packets of 8 KB, 32-byte acks\n"
               "  echo     request/response echo: throughput and p50/p99 latency\n"
               "  http     seda-load's engine: the seed's HTTP clients, or an open-loop rate\n"
               "  gnutella Gnutella 0.4 peers: a bursty descriptor stream or a trace, forwarding latency\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "asocket") == 0)
        return loadgen_asocket(argc - 1, argv + 1);
    if (strcmp(argv[1], "echo") == 0)
        return loadgen_echo(argc - 1, argv + 1);
    if (strcmp(argv[1], "http") == 0)
        return loadgen_http(argc - 1, argv + 1);
    if (strcmp(argv[1], "gnutella") == 0)
        return loadgen_gnutella(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "seda-loadgen: unknown client '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
