/*
 * The echo benchmark client: C connections to 127.0.0.1:port, each sending a
 * message of `size` bytes and waiting for the same bytes back before sending
 * the next (one request in flight per connection, closed loop, as the seed's
 * request/response benchmarks). Every echoed byte is checked. Latency is
 * from the first byte written to the last byte read back.
 */
#ifndef SLOAD_ECHO_H
#define SLOAD_ECHO_H

#include <stdint.h>

#include "sload_hist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sload_echo_config {
    uint16_t port;
    uint32_t connections;
    uint32_t size;           /* message bytes (64, 8192 ...) */
    uint32_t threads;        /* epoll threads */
    uint32_t connect_window; /* connects in flight at once (0: 256) */
    double warmup_s;         /* after every connection is up, not measured */
    double duration_s;       /* measured */
    double connect_limit_s;  /* opening the connections may take this long (0: 30 s) */
    int progress;            /* a line per second on stderr */
} sload_echo_config_t;

typedef struct sload_echo_result {
    uint32_t connected;
    uint32_t connect_errors;
    uint32_t io_errors;      /* resets, early EOF */
    uint32_t mismatches;     /* echoed bytes that differ from those sent */
    uint64_t messages;       /* completed inside the measured window */
    uint64_t bytes;          /* message bytes echoed inside the window (one direction) */
    double window_s;
    double messages_per_s;
    double mbit_s;           /* bytes * 8 / window / 1e6 */
    sload_hist_t *latency;   /* ns, messages completed inside the window; owned by the result */
} sload_echo_result_t;

void sload_echo_defaults(sload_echo_config_t *cfg, uint16_t port, uint32_t connections, uint32_t size);

/*
 * Runs one measurement. Returns 0 (errors are counted in *out) or a negative
 * errno when it could not start. Free the result with sload_echo_result_free.
 */
int sload_echo_run(const sload_echo_config_t *cfg, sload_echo_result_t *out);
void sload_echo_result_free(sload_echo_result_t *out);

#ifdef __cplusplus
}
#endif

#endif
