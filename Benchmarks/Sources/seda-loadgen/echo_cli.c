/* seda-loadgen echo: the command line of the echo benchmark client. */
#include "cli.h"
#include "sload_echo.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: seda-loadgen echo --port N [--connections C] [--size B] [--threads T]\n"
               "                         [--warmup S] [--duration S] [--connect-window W] [--quiet]\n"
               "  C connections (100) to 127.0.0.1:N, each echoing messages of B bytes (64), one\n"
               "  in flight. Every byte is checked. Prints messages/s, Mbit/s, p50/p99 latency\n"
               "  over --duration (5 s) after --warmup (1 s).\n");
}

int loadgen_echo(int argc, char **argv)
{
    sload_echo_config_t cfg;
    sload_echo_defaults(&cfg, 0, 100, 64);
    cfg.progress = 1;
    static const struct option longs[] = {
        {"port", required_argument, 0, 'p'},     {"connections", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'},     {"threads", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'W'},   {"duration", required_argument, 0, 'd'},
        {"connect-window", required_argument, 0, 'w'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:c:s:t:W:d:w:qh", longs, NULL)) != -1) {
        long long v = 0;
        double t = 0;
        if (c == 'W' || c == 'd') {
            if ((t = cli_seconds(optarg)) < 0) {
                fprintf(stderr, "echo: bad time '%s'\n", optarg);
                return 2;
            }
        } else if (optarg && ((v = cli_count(optarg)) < 0 || v > 0xffffffffLL)) {
            fprintf(stderr, "echo: bad value '%s'\n", optarg);
            return 2;
        }
        switch (c) {
        case 'p': cfg.port = (uint16_t)v; break;
        case 'c': cfg.connections = (uint32_t)v; break;
        case 's': cfg.size = (uint32_t)v; break;
        case 't': cfg.threads = (uint32_t)v; break;
        case 'W': cfg.warmup_s = t; break;
        case 'd': cfg.duration_s = t; break;
        case 'w': cfg.connect_window = (uint32_t)v; break;
        case 'q': cfg.progress = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (cfg.port == 0) {
        usage(stderr);
        return 2;
    }
    sload_echo_result_t r;
    int rc = sload_echo_run(&cfg, &r);
    if (rc != 0) {
        fprintf(stderr, "echo: %s\n", strerror(-rc));
        return 1;
    }
    double p50 = (double)sload_hist_quantile(r.latency, 0.5) / 1e3;
    double p99 = (double)sload_hist_quantile(r.latency, 0.99) / 1e3;
    double max = (double)sload_hist_max(r.latency) / 1e3;
    printf("echo: %u connections, %u B: %.0f messages/s, %.1f Mbit/s, latency p50 %.1f us p99 %.1f us max %.1f us\n",
           cfg.connections, cfg.size, r.messages_per_s, r.mbit_s, p50, p99, max);
    printf("result: client=echo connections=%u connected=%u size=%u messages=%llu window_s=%.3f"
           " messages_per_s=%.1f mbit_s=%.3f p50_us=%.2f p99_us=%.2f max_us=%.2f connect_errors=%u io_errors=%u"
           " mismatches=%u\n",
           cfg.connections, r.connected, cfg.size, (unsigned long long)r.messages, r.window_s, r.messages_per_s,
           r.mbit_s, p50, p99, max, r.connect_errors, r.io_errors, r.mismatches);
    int ok = r.connected == cfg.connections && r.io_errors == 0 && r.mismatches == 0 && r.messages > 0;
    sload_echo_result_free(&r);
    return ok ? 0 : 1;
}
