/*
 * The client side of the seed's aSocket benchmark ("Server reads 1000 8kb
 * packets, sends 32-byte ack"): C connections to 127.0.0.1:port, each sending
 * `packets` packets of `packet_size` bytes, one at a time, and waiting for an
 * `ack_size`-byte acknowledgement after each (stop and wait, as the seed).
 *
 * All connections are opened first (at most `connect_window` connects in
 * flight); the transfer clock starts when the last one is up. The aggregate
 * rate counts acknowledged payload bytes.
 */
#ifndef SLOAD_ASOCKET_H
#define SLOAD_ASOCKET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sload_asocket_config {
    uint16_t port;
    uint32_t connections;    /* 1 ... ~19,000 (the descriptor limit) */
    uint32_t packets;        /* per connection; the seed: 1000 */
    uint32_t packet_size;    /* bytes; the seed: 8192 */
    uint32_t ack_size;       /* bytes; the seed: 32 */
    uint32_t threads;        /* epoll threads, 1 or more */
    uint32_t connect_window; /* connects in flight at once (0: 256) */
    double time_limit_s;     /* the whole run, connects included (0: 60 s) */
    double duration_s;       /* > 0: measure this long once all are up, then stop (a
                                connection need not finish its packets); 0: until every
                                connection sent all its packets */
    int progress;            /* non-zero: a line per second on stderr */
} sload_asocket_config_t;

typedef struct sload_asocket_result {
    uint32_t connected;        /* connections that came up */
    uint32_t finished;         /* connections that got every ack */
    uint32_t connect_errors;
    uint32_t io_errors;        /* resets, early EOF */
    uint32_t protocol_errors;  /* an ack before its packet was sent, or too many ack bytes */
    int timed_out;             /* 1 when the time limit stopped the run */
    int cut;                   /* 1 when duration_s ended the transfer (not an error) */
    uint64_t packets_acked;
    uint64_t bytes_acked;      /* payload bytes of acknowledged packets */
    double connect_s;          /* opening every connection */
    double transfer_s;         /* first packet to last ack (or the time limit) */
    double mbit_s;             /* bytes_acked * 8 / transfer_s / 1e6 */
} sload_asocket_result_t;

/* Fills a config with the seed's defaults for `port` and `connections`. */
void sload_asocket_defaults(sload_asocket_config_t *cfg, uint16_t port, uint32_t connections);

/*
 * Runs the benchmark; blocks until every connection finished or the time
 * limit passed. Raises RLIMIT_NOFILE to its hard limit. Returns 0 (look at
 * the error counts in *out) or a negative errno when it could not start
 * (-EINVAL for a bad config, -EMFILE when `connections` exceeds the limit).
 * Call from one thread at a time.
 */
int sload_asocket_run(const sload_asocket_config_t *cfg, sload_asocket_result_t *out);

#ifdef __cplusplus
}
#endif

#endif
