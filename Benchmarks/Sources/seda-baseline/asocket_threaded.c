/*
 * The seed's "threaded aSocket server", written for the comparison: one
 * thread per connection (small stack), a blocking read of one whole packet,
 * then a blocking write of the ack (--ack-size bytes of '.').
 */
#define _GNU_SOURCE
#include "baseline.h"
#include "tserver.h"
#include "sload_net.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct asocket_opts {
    uint32_t packet_size;
    uint32_t ack_size;
};

static void serve(struct tserver *s, int fd)
{
    const struct asocket_opts *o = s->ctx;
    char buf[16384]; /* the stack is small (64 KB by default) */
    char ack[256];
    uint64_t packets = 0, bytes = 0;
    memset(ack, '.', sizeof ack);
    for (;;) {
        uint32_t got = 0;
        while (got < o->packet_size) {
            size_t want = o->packet_size - got;
            ssize_t n = read(fd, buf, want < sizeof buf ? want : sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                goto done;
            got += (uint32_t)n;
        }
        bytes += got;
        if (sload_write_all(fd, ack, o->ack_size) != 0)
            goto done;
        packets++;
    }
done:
    atomic_fetch_add_explicit(&s->units, packets, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes_in, bytes, memory_order_relaxed);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: seda-baseline asocket-threaded [--port N] [--packet-size B] [--ack-size B]\n"
               "                                    [--stack-kb K] [--backlog N]\n"
               "  Thread per connection, blocking I/O: reads packets of --packet-size bytes\n"
               "  (8192) and answers each with --ack-size bytes (32). Port 0 picks one.\n");
}

int baseline_asocket_threaded(int argc, char **argv)
{
    static struct asocket_opts o = {8192, 32};
    static struct tserver s = {.name = "asocket-threaded", .backlog = 4096, .stack_size = 64 * 1024};
    static const struct option longs[] = {
        {"port", required_argument, 0, 'p'},        {"packet-size", required_argument, 0, 's'},
        {"ack-size", required_argument, 0, 'a'},    {"stack-kb", required_argument, 0, 'k'},
        {"backlog", required_argument, 0, 'b'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:s:a:k:b:h", longs, NULL)) != -1) {
        switch (c) {
        case 'p': s.port = (uint16_t)atoi(optarg); break;
        case 's': o.packet_size = (uint32_t)atoi(optarg); break;
        case 'a': o.ack_size = (uint32_t)atoi(optarg); break;
        case 'k': s.stack_size = (size_t)atoi(optarg) * 1024; break;
        case 'b': s.backlog = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.packet_size == 0 || o.ack_size == 0 || o.ack_size > 256) {
        fprintf(stderr, "asocket-threaded: --packet-size must be > 0 and --ack-size in 1...256\n");
        return 2;
    }
    s.serve = serve;
    s.ctx = &o;
    tserver_units_name = "packets";
    return tserver_run(&s);
}
