/*
 * seda-load's engine: the seed's HTTP benchmark client, in C over epoll.
 *
 * Closed loop (rate == 0), the seed's workload: `clients` clients, each
 * asking for `path`, sleeping `think_ms` (20) after every response, and
 * opening a new connection every `requests_per_connection` (100) requests
 * (the last request on a connection says "Connection: close").
 *
 * Open loop (rate > 0): requests are due at a fixed rate (rate / s, evenly
 * spaced), each sent on any idle connection of a pool of `clients`
 * connections (opened as needed; renewed every `requests_per_connection`
 * requests when that is non-zero). A request that finds every connection
 * busy waits, its clock running.
 *
 * No coordinated omission: a response time is measured from when its request
 * was *due* (its think time ended, or its slot in the open-loop schedule
 * came), not from when it was sent; a slow server or a slow client loop
 * cannot hide waiting. The first request on a new connection includes the
 * connect. Connect time (connect(2) to established) is measured apart too.
 *
 * Measured: the response times of requests due inside the window [warmup,
 * warmup + duration); the rate counts responses completed inside it. After the
 * window, requests in flight get `drain_s` to finish; those still unanswered
 * then (whenever they were due, warmup included) are reported as outstanding,
 * with their ages.
 */
#ifndef SLOAD_HTTPLOAD_H
#define SLOAD_HTTPLOAD_H

#include <stdint.h>

#include "sload_hist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sload_http_config {
    uint16_t port;                    /* 127.0.0.1:port */
    const char *path;                 /* NULL: "/index.html" (copied) */
    uint32_t clients;                 /* closed loop: clients; open loop: connections */
    double think_ms;                  /* closed loop: sleep after each response (20) */
    uint32_t requests_per_connection; /* new connection after this many (100); 0: keep one */
    double rate;                      /* > 0: open loop at this many requests per second */
    double warmup_s;                  /* not measured (default 1 s; 0 allowed) */
    double duration_s;                /* measured window (> 0) */
    double drain_s;                   /* grace for requests in flight after the window (2 s) */
    uint32_t threads;                 /* epoll threads (1) */
    int64_t expect_body;              /* body bytes every 2xx response must have; -1: any */
    int progress;                     /* a line per second on stderr */
} sload_http_config_t;

typedef struct sload_http_result {
    double window_s;
    uint64_t completed;          /* responses completed inside the window (any status) */
    uint64_t ok;                 /* ... of which 2xx */
    uint64_t rejected;           /* ... of which 503 (load shedding) */
    uint64_t other_status;       /* ... of which neither 2xx nor 503 */
    uint64_t errors;             /* requests failed: reset, EOF or bad framing mid-response, body size */
    uint64_t connects;           /* connections established */
    uint64_t connect_errors;     /* connects refused, reset or unfinished */
    uint64_t outstanding;        /* requests still unanswered after the drain */
    int64_t oldest_outstanding_ns;
    uint64_t body_bytes;         /* response body bytes received inside the window */
    double completions_per_s;    /* completed / window */
    double ok_per_s;
    double fairness;             /* Jain's index over per-client completions in the window */
    sload_hist_t *response_ok;   /* ns, due -> complete, 2xx, requests due in the window */
    sload_hist_t *response_other;/* the same for non-2xx responses (503s ...) */
    sload_hist_t *connect;       /* ns, connects started in the window */
    sload_hist_t *send_lag;      /* ns, due -> first byte sent, on an open connection: the client's own delay */
    sload_hist_t *unanswered;    /* ns, the age at the end of each outstanding request (a lower bound of
                                    its response time: merge it into a response histogram to count them) */
    uint32_t clients;
    uint64_t *per_client;        /* [clients] completions inside the window */
    uint32_t timeline_len;
    uint64_t *timeline;          /* [timeline_len] responses completed in each second since the start */
} sload_http_result_t;

/* The seed's defaults: 20 ms think time, 100 requests per connection, 1 s warmup, 2 s drain. */
void sload_http_defaults(sload_http_config_t *cfg, uint16_t port, uint32_t clients, double duration_s);

/*
 * Runs one measurement; blocks for about warmup + duration (+ up to drain).
 * Raises RLIMIT_NOFILE to its hard limit. Returns 0 (failures are counted in
 * *out) or a negative errno (-EINVAL, -EMFILE when `clients` exceeds the
 * descriptor limit, -ENOMEM). Free *out with sload_http_result_free.
 */
int sload_http_run(const sload_http_config_t *cfg, sload_http_result_t *out);
void sload_http_result_free(sload_http_result_t *out);

/* Jain's fairness index (sum x)^2 / (n sum x^2) of n counts; 1 when all are 0. */
double sload_jain(const uint64_t *x, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif
