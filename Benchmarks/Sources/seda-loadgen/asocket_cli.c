/* seda-loadgen asocket: the command line of the aSocket benchmark client. */
#include "cli.h"
#include "sload_asocket.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: seda-loadgen asocket --port N [--connections C] [--packets P] [--packet-size B]\n"
            "                            [--ack-size B] [--threads T] [--connect-window W]\n"
            "                            [--duration S] [--time-limit S] [--quiet]\n"
            "  C connections to 127.0.0.1:N (1), each sends P packets (1000) of B bytes (8192),\n"
            "  waiting for an ack of --ack-size bytes (32) after each. Prints the aggregate\n"
            "  Mbit/s of acknowledged payload. --duration: measure S seconds once every\n"
            "  connection is up, then stop (connections need not finish). Bounded by\n"
            "  --time-limit (60 s): hitting it is a failure, the rate so far is printed.\n");
}

int loadgen_asocket(int argc, char **argv)
{
    sload_asocket_config_t cfg;
    sload_asocket_defaults(&cfg, 0, 1);
    cfg.progress = 1;
    static const struct option longs[] = {
        {"port", required_argument, 0, 'p'},           {"connections", required_argument, 0, 'c'},
        {"packets", required_argument, 0, 'n'},        {"packet-size", required_argument, 0, 's'},
        {"ack-size", required_argument, 0, 'a'},       {"threads", required_argument, 0, 't'},
        {"connect-window", required_argument, 0, 'w'}, {"time-limit", required_argument, 0, 'T'},
        {"duration", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},                {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:c:n:s:a:t:w:T:d:qh", longs, NULL)) != -1) {
        long long v = (c != 'T' && c != 'd' && optarg) ? cli_count(optarg) : 0;
        if (v < 0 || v > 0xffffffffLL) {
            fprintf(stderr, "asocket: bad value '%s'\n", optarg);
            return 2;
        }
        switch (c) {
        case 'p': cfg.port = (uint16_t)v; break;
        case 'c': cfg.connections = (uint32_t)v; break;
        case 'n': cfg.packets = (uint32_t)v; break;
        case 's': cfg.packet_size = (uint32_t)v; break;
        case 'a': cfg.ack_size = (uint32_t)v; break;
        case 't': cfg.threads = (uint32_t)v; break;
        case 'w': cfg.connect_window = (uint32_t)v; break;
        case 'T':
            if ((cfg.time_limit_s = cli_seconds(optarg)) <= 0) {
                fprintf(stderr, "asocket: bad time '%s'\n", optarg);
                return 2;
            }
            break;
        case 'd':
            if ((cfg.duration_s = cli_seconds(optarg)) <= 0) {
                fprintf(stderr, "asocket: bad time '%s'\n", optarg);
                return 2;
            }
            break;
        case 'q': cfg.progress = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (cfg.port == 0) {
        usage(stderr);
        return 2;
    }
    sload_asocket_result_t r;
    int rc = sload_asocket_run(&cfg, &r);
    if (rc != 0) {
        fprintf(stderr, "asocket: %s\n", strerror(-rc));
        return 1;
    }
    printf("asocket: %u connections x %u packets of %u B (ack %u B): %u finished, %.1f MB in %.3f s = %.1f Mbit/s"
           " (connect %.3f s)%s%s\n",
           cfg.connections, cfg.packets, cfg.packet_size, cfg.ack_size, r.finished, (double)r.bytes_acked / 1e6,
           r.transfer_s, r.mbit_s, r.connect_s, r.timed_out ? " [time limit hit]" : "",
           r.cut ? " [--duration ended it]" : "");
    printf("result: client=asocket connections=%u connected=%u finished=%u packets_acked=%llu bytes_acked=%llu"
           " connect_s=%.6f transfer_s=%.6f mbit_s=%.3f connect_errors=%u io_errors=%u protocol_errors=%u"
           " timed_out=%d cut=%d\n",
           cfg.connections, r.connected, r.finished, (unsigned long long)r.packets_acked,
           (unsigned long long)r.bytes_acked, r.connect_s, r.transfer_s, r.mbit_s, r.connect_errors, r.io_errors,
           r.protocol_errors, r.timed_out, r.cut);
    int clean = r.connected == cfg.connections && !r.timed_out && r.io_errors == 0 && r.protocol_errors == 0;
    return clean && (r.cut || r.finished == cfg.connections) ? 0 : 1;
}
