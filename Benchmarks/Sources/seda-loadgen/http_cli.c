/*
 * seda-loadgen http: seda-load's engine from C, for scripts and the smoke
 * tests. (seda-load, the Swift front end, adds sweeps, CSV and plots.)
 */
#include "cli.h"
#include "sload_httpload.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: seda-loadgen http --port N [--clients C] [--think MS] [--requests-per-connection R]\n"
            "                         [--rate RPS] [--path P] [--warmup S] [--duration S] [--drain S]\n"
            "                         [--threads T] [--expect-bytes B] [--quiet]\n"
            "  Closed loop (default): C clients (1024), each asking for P (/index.html), sleeping\n"
            "  MS ms (20) between requests, a new connection every R requests (100).\n"
            "  Open loop (--rate): RPS requests per second over up to C connections.\n"
            "  Response time is measured from when each request was due.\n");
}

static double ms(int64_t ns) { return (double)ns / 1e6; }

int loadgen_http(int argc, char **argv)
{
    sload_http_config_t cfg;
    sload_http_defaults(&cfg, 0, 1024, 5);
    cfg.progress = 1;
    static const struct option longs[] = {
        {"port", required_argument, 0, 'p'},      {"clients", required_argument, 0, 'c'},
        {"think", required_argument, 0, 'k'},     {"requests-per-connection", required_argument, 0, 'r'},
        {"rate", required_argument, 0, 'R'},      {"path", required_argument, 0, 'P'},
        {"warmup", required_argument, 0, 'W'},    {"duration", required_argument, 0, 'd'},
        {"drain", required_argument, 0, 'D'},     {"threads", required_argument, 0, 't'},
        {"expect-bytes", required_argument, 0, 'b'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:c:k:r:R:P:W:d:D:t:b:qh", longs, NULL)) != -1) {
        double t = 0;
        long long v = 0;
        if (c == 'W' || c == 'd' || c == 'D') {
            if ((t = cli_seconds(optarg)) < 0) {
                fprintf(stderr, "http: bad time '%s'\n", optarg);
                return 2;
            }
        } else if (c == 'k' || c == 'R') {
            char *end;
            t = strtod(optarg, &end);
            if (end == optarg || *end || t < 0) {
                fprintf(stderr, "http: bad number '%s'\n", optarg);
                return 2;
            }
        } else if (c != 'P' && optarg && ((v = cli_count(optarg)) < 0 || v > 0xffffffffLL)) {
            fprintf(stderr, "http: bad value '%s'\n", optarg);
            return 2;
        }
        switch (c) {
        case 'p': cfg.port = (uint16_t)v; break;
        case 'c': cfg.clients = (uint32_t)v; break;
        case 'k': cfg.think_ms = t; break;
        case 'r': cfg.requests_per_connection = (uint32_t)v; break;
        case 'R': cfg.rate = t; break;
        case 'P': cfg.path = optarg; break;
        case 'W': cfg.warmup_s = t; break;
        case 'd': cfg.duration_s = t; break;
        case 'D': cfg.drain_s = t; break;
        case 't': cfg.threads = (uint32_t)v; break;
        case 'b': cfg.expect_body = v; break;
        case 'q': cfg.progress = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (cfg.port == 0) {
        usage(stderr);
        return 2;
    }
    sload_http_result_t r;
    int rc = sload_http_run(&cfg, &r);
    if (rc != 0) {
        fprintf(stderr, "http: %s\n", strerror(-rc));
        return 1;
    }
    const sload_hist_t *h = r.response_ok;
    printf("http: %u %s, %.0f completions/s (%.0f ok, %llu 503, %llu other), %llu errors, %llu connect errors,"
           " fairness %.3f\n",
           cfg.clients, cfg.rate > 0 ? "connections" : "clients", r.completions_per_s, r.ok_per_s,
           (unsigned long long)r.rejected, (unsigned long long)r.other_status, (unsigned long long)r.errors,
           (unsigned long long)r.connect_errors, r.fairness);
    printf("http: response ms: median %.2f  p90 %.2f  p99 %.2f  max %.2f;  connect ms: median %.3f  max %.3f;"
           "  outstanding %llu (oldest %.0f ms)\n",
           ms(sload_hist_quantile(h, 0.5)), ms(sload_hist_quantile(h, 0.9)), ms(sload_hist_quantile(h, 0.99)),
           ms(sload_hist_max(h)), ms(sload_hist_quantile(r.connect, 0.5)), ms(sload_hist_max(r.connect)),
           (unsigned long long)r.outstanding, ms(r.oldest_outstanding_ns));
    printf("result: client=http clients=%u rate=%.1f completed=%llu ok=%llu rejected=%llu other_status=%llu"
           " errors=%llu connects=%llu connect_errors=%llu outstanding=%llu completions_per_s=%.1f"
           " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f rejected_p50_ms=%.3f rejected_p99_ms=%.3f"
           " connect_p50_ms=%.3f connect_max_ms=%.3f fairness=%.4f body_bytes=%llu lag_p99_ms=%.3f\n",
           cfg.clients, cfg.rate, (unsigned long long)r.completed, (unsigned long long)r.ok,
           (unsigned long long)r.rejected, (unsigned long long)r.other_status, (unsigned long long)r.errors,
           (unsigned long long)r.connects, (unsigned long long)r.connect_errors, (unsigned long long)r.outstanding,
           r.completions_per_s, ms(sload_hist_quantile(h, 0.5)), ms(sload_hist_quantile(h, 0.9)),
           ms(sload_hist_quantile(h, 0.99)), ms(sload_hist_max(h)), ms(sload_hist_quantile(r.response_other, 0.5)),
           ms(sload_hist_quantile(r.response_other, 0.99)), ms(sload_hist_quantile(r.connect, 0.5)),
           ms(sload_hist_max(r.connect)), r.fairness, (unsigned long long)r.body_bytes,
           ms(sload_hist_quantile(r.send_lag, 0.99)));
    int ok = r.errors == 0 && r.connect_errors == 0 && r.outstanding == 0 && r.ok > 0;
    sload_http_result_free(&r);
    return ok ? 0 : 1;
}
