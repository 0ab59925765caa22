/* seda-loadgen gnutella: the command line of the Gnutella load generator. */
#include "cli.h"
#include "sload_gnutella.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: seda-loadgen gnutella --port N [--connections C] [--rate R] [--threads T]\n"
            "         [--mix ping,pong,push,query,queryhit] [--ttl N] [--burst B] [--burst-on-ms MS]\n"
            "         [--clogged K] [--query-bytes N] [--warmup S] [--duration S] [--drain S]\n"
            "         [--trace FILE] [--trace-speed X] [--record FILE] [--server-pid PID] [--seed N]\n"
            "         [--expect-routed] [--quiet]\n"
            "  C connections (10) to a Gnutella 0.4 router on 127.0.0.1:N, handshaken, then R\n"
            "  descriptors/s (1000) open loop, the seed's mix by default (weights 25,35,5,15,20:\n"
            "  15%% queries); --burst B sends in on/off bursts at B x R with the same mean.\n"
            "  Responses answer requests the connection received (routed back); pushes\n"
            "  target servents of query hits it sent. --clogged K connections never read.\n"
            "  --trace replays a trace (see sload_gnutella.h); --record writes the synthetic\n"
            "  stream as one. Prints, per type, offered and delivered descriptors and the\n"
            "  forwarding latency (offer to delivery), and a timeline with --server-pid's RSS.\n"
            "  --expect-routed: exit 1 unless every type offered was delivered at least once.\n");
}

static int parse_mix(const char *s, double mix[SLOAD_GNU_TYPES])
{
    char *end;
    for (int i = 0; i < SLOAD_GNU_TYPES; i++) {
        mix[i] = strtod(s, &end);
        if (end == s || mix[i] < 0)
            return -1;
        if (i < SLOAD_GNU_TYPES - 1) {
            if (*end != ',')
                return -1;
            s = end + 1;
        }
    }
    return *end == '\0' ? 0 : -1;
}

int loadgen_gnutella(int argc, char **argv)
{
    sload_gnu_config_t cfg;
    sload_gnu_defaults(&cfg, 0, 10, 1000);
    cfg.progress = 1;
    int expect_routed = 0;
    static const struct option longs[] = {
        {"port", required_argument, 0, 'p'},        {"connections", required_argument, 0, 'c'},
        {"rate", required_argument, 0, 'r'},        {"threads", required_argument, 0, 't'},
        {"mix", required_argument, 0, 'm'},         {"ttl", required_argument, 0, 'T'},
        {"burst", required_argument, 0, 'b'},       {"burst-on-ms", required_argument, 0, 'B'},
        {"clogged", required_argument, 0, 'k'},     {"query-bytes", required_argument, 0, 'Q'},
        {"warmup", required_argument, 0, 'W'},      {"duration", required_argument, 0, 'd'},
        {"drain", required_argument, 0, 'D'},       {"trace", required_argument, 0, 'f'},
        {"trace-speed", required_argument, 0, 'x'}, {"record", required_argument, 0, 'R'},
        {"server-pid", required_argument, 0, 'P'},  {"seed", required_argument, 0, 's'},
        {"expect-routed", no_argument, 0, 'e'},     {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:c:r:t:m:T:b:B:k:Q:W:d:D:f:x:R:P:s:eqh", longs, NULL)) != -1) {
        long long v = 0;
        double t = 0;
        char *end;
        switch (c) {
        case 'W': case 'd': case 'D':
            if ((t = cli_seconds(optarg)) < 0) {
                fprintf(stderr, "gnutella: bad time '%s'\n", optarg);
                return 2;
            }
            break;
        case 'r': case 'b': case 'B': case 'x':
            t = strtod(optarg, &end);
            if (end == optarg || *end || t < 0) {
                fprintf(stderr, "gnutella: bad number '%s'\n", optarg);
                return 2;
            }
            break;
        case 'p': case 'c': case 't': case 'T': case 'k': case 'Q': case 'P': case 's':
            if ((v = cli_count(optarg)) < 0 || v > 0xffffffffLL) {
                fprintf(stderr, "gnutella: bad value '%s'\n", optarg);
                return 2;
            }
            break;
        }
        switch (c) {
        case 'p': cfg.port = (uint16_t)v; break;
        case 'c': cfg.connections = (uint32_t)v; break;
        case 'r': cfg.rate = t; break;
        case 't': cfg.threads = (uint32_t)v; break;
        case 'm':
            if (parse_mix(optarg, cfg.mix) != 0) {
                fprintf(stderr, "gnutella: --mix wants five weights: ping,pong,push,query,queryhit\n");
                return 2;
            }
            break;
        case 'T': cfg.ttl = (uint8_t)(v > 255 ? 255 : v); break;
        case 'b': cfg.burst = t; break;
        case 'B': cfg.burst_on_ms = t; break;
        case 'k': cfg.clogged = (uint32_t)v; break;
        case 'Q': cfg.query_bytes = (uint32_t)v; break;
        case 'W': cfg.warmup_s = t; break;
        case 'd': cfg.duration_s = t; break;
        case 'D': cfg.drain_s = t; break;
        case 'f': cfg.trace_path = optarg; break;
        case 'x': cfg.trace_speed = t; break;
        case 'R': cfg.record_path = optarg; break;
        case 'P': cfg.server_pid = (int32_t)v; break;
        case 's': cfg.seed = (uint64_t)v; break;
        case 'e': expect_routed = 1; break;
        case 'q': cfg.progress = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (cfg.port == 0 || (cfg.trace_path && cfg.record_path)) {
        usage(stderr);
        return 2;
    }
    sload_gnu_result_t r;
    int rc = sload_gnu_run(&cfg, &r);
    if (rc != 0) {
        fprintf(stderr, "gnutella: %s\n", strerror(-rc));
        return 1;
    }
    printf("gnutella: %u connections (%u handshaken, %u clogged), %.1f s window\n", cfg.connections, r.connected,
           cfg.clogged, r.window_s);
    printf("  %-9s %10s %10s %10s %10s %10s\n", "type", "offered", "delivered", "p50 us", "p99 us", "max us");
    uint64_t offered = 0, delivered = 0;
    int missing = 0;
    for (int t = 0; t < SLOAD_GNU_TYPES; t++) {
        offered += r.sent[t];
        delivered += r.received[t];
        if (r.sent[t] > 0 && r.received[t] == 0)
            missing = 1;
        printf("  %-9s %10llu %10llu %10.1f %10.1f %10.1f\n", sload_gnu_type_name(t), (unsigned long long)r.sent[t],
               (unsigned long long)r.received[t], (double)sload_hist_quantile(r.latency[t], 0.5) / 1e3,
               (double)sload_hist_quantile(r.latency[t], 0.99) / 1e3, (double)sload_hist_max(r.latency[t]) / 1e3);
    }
    if (cfg.server_pid > 0 || cfg.clogged > 0) {
        printf("  %6s %10s %10s %10s %6s %12s\n", "t s", "offered/s", "deliv./s", "p99 us", "open", "server RSS KB");
        for (uint32_t i = 0; i < r.seconds; i++) {
            const sload_gnu_second_t *s = &r.timeline[i];
            printf("  %6.0f %10llu %10llu %10.1f %6u %12llu\n", s->t, (unsigned long long)s->sent,
                   (unsigned long long)s->received, (double)s->p99_ns / 1e3, s->open,
                   (unsigned long long)s->server_rss_kb);
        }
    }
    printf("result: client=gnutella connections=%u connected=%u clogged=%u window_s=%.3f offered=%llu delivered=%llu"
           " offered_per_s=%.1f delivered_per_s=%.1f p50_us=%.2f p99_us=%.2f",
           cfg.connections, r.connected, cfg.clogged, r.window_s, (unsigned long long)offered,
           (unsigned long long)delivered, (double)offered / r.window_s, (double)delivered / r.window_s,
           (double)sload_hist_quantile(r.latency_all, 0.5) / 1e3,
           (double)sload_hist_quantile(r.latency_all, 0.99) / 1e3);
    for (int t = 0; t < SLOAD_GNU_TYPES; t++)
        printf(" %s_offered=%llu %s_delivered=%llu %s_p99_us=%.2f", sload_gnu_type_name(t),
               (unsigned long long)r.sent[t], sload_gnu_type_name(t), (unsigned long long)r.received[t],
               sload_gnu_type_name(t), (double)sload_hist_quantile(r.latency[t], 0.99) / 1e3);
    printf(" connect_errors=%u handshake_errors=%u closed_by_server=%u clogged_closed=%u protocol_errors=%u"
           " unanswerable=%llu backlog_drops=%llu foreign=%llu rss_first_kb=%llu rss_max_kb=%llu rss_last_kb=%llu\n",
           r.connect_errors, r.handshake_errors, r.closed_by_server, r.clogged_closed, r.protocol_errors,
           (unsigned long long)r.unanswerable, (unsigned long long)r.backlog_drops, (unsigned long long)r.foreign,
           (unsigned long long)r.rss_first_kb, (unsigned long long)r.rss_max_kb, (unsigned long long)r.rss_last_kb);
    int ok = r.connected == cfg.connections && r.handshake_errors == 0 && r.protocol_errors == 0 && offered > 0 &&
             (!expect_routed || !missing);
    sload_gnu_result_free(&r);
    return ok ? 0 : 1;
}
