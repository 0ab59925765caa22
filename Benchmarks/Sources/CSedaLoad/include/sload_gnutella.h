/*
 * The Gnutella load generator (seda-bench gnutella, seda-loadgen gnutella):
 * C connections to a Gnutella 0.4 router on 127.0.0.1:port, each shaking
 * hands (GNUTELLA CONNECT/0.4), then an open-loop stream of descriptors
 * offered at `rate` per second in total: the seed's mix (about 15 %
 * queries), bursty if asked (on/off periods, exponentially distributed,
 * peak `burst` x rate, the same mean). Requests (pings, queries) carry
 * fresh IDs and are flooded by the router; responses (pongs, query hits)
 * answer a request this connection received, so the router routes them
 * back to the connection that sent it; pushes name the servent ID of a
 * query hit this generator sent, so they are routed to that hit's sender.
 *
 * Forwarding latency: every descriptor carries an 8-byte stamp (the send
 * time; in the descriptor ID for requests and pushes, in the payload for
 * pongs and query hits), so a copy received on any connection gives the
 * time from offer to delivery, per type.
 *
 * Traces: a text file, one descriptor per line (comments start with #):
 *     offset_us connection type ttl hops ref [payload_hex]
 * type is ping, pong, query, queryhit or push; offset_us counts from the
 * start of the replay; connection is taken modulo the connection count;
 * ref is '-' or, for a pong / query hit, the line index (0-based, counting
 * descriptor lines only) of the ping / query it answers (the ID is reused),
 * for a push the index of the query hit whose servent it targets. Without
 * payload_hex a payload is made up. A replay has no warm-up and lasts as
 * long as the trace (warmup_s and duration_s are not read). A synthetic run
 * can record itself in this format (record_path).
 *
 * Clogged connections (`clogged`): the first connections of each thread
 * stop reading once handshaken (the seed's saturated modem links); at the
 * end the generator checks which of them the router closed.
 */
#ifndef SLOAD_GNUTELLA_H
#define SLOAD_GNUTELLA_H

#include <stdint.h>

#include "sload_hist.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Descriptor types in the generator's order (indexes of the arrays below). */
enum { SLOAD_GNU_PING = 0, SLOAD_GNU_PONG, SLOAD_GNU_PUSH, SLOAD_GNU_QUERY, SLOAD_GNU_QUERYHIT, SLOAD_GNU_TYPES };

/* "ping", "pong", "push", "query", "queryhit"; NULL out of range. */
const char *sload_gnu_type_name(int type);

typedef struct sload_gnu_config {
    uint16_t port;
    uint32_t connections;
    uint32_t threads;          /* epoll threads (each owns connections / threads) */
    double rate;               /* descriptors/s offered in total (synthetic mode) */
    double mix[SLOAD_GNU_TYPES]; /* relative weights by type (normalised) */
    uint8_t ttl;               /* requests' TTL (responses and pushes: 7) */
    double burst;              /* 1: smooth; B > 1: on/off with peak B x rate */
    double burst_on_ms;        /* mean length of an on period */
    uint32_t clogged;          /* connections that never read once handshaken */
    uint32_t query_bytes;      /* length of a query's search text */
    uint32_t connect_window;   /* connects in flight at once (0: 256) */
    double warmup_s;           /* after every connection is up, not measured */
    double duration_s;         /* measured */
    double drain_s;            /* after sending stops, still receiving (0: 1 s) */
    double connect_limit_s;    /* opening and handshaking may take this long (0: 30 s) */
    const char *trace_path;    /* replay this trace instead of synthesising */
    double trace_speed;        /* replay speed factor (0: 1) */
    const char *record_path;   /* write the synthetic stream as a trace */
    int32_t server_pid;        /* sample this process's RSS each second (0: none) */
    uint64_t seed;             /* PRNG seed */
    int progress;              /* a line per second on stderr */
} sload_gnu_config_t;

/* One second of the run (counted from the start gate, warm-up included). */
typedef struct sload_gnu_second {
    double t;                  /* seconds since the start gate */
    uint64_t sent, received;   /* descriptors in this second */
    uint64_t received_type[SLOAD_GNU_TYPES];
    int64_t p99_ns;            /* forwarding latency of what arrived this second */
    uint64_t server_rss_kb;    /* 0 without a server pid */
    uint32_t open;             /* connections still open */
} sload_gnu_second_t;

typedef struct sload_gnu_result {
    uint32_t connected;        /* handshaken */
    uint32_t connect_errors, handshake_errors;
    uint32_t closed_by_server; /* reading connections the router closed during the run */
    uint32_t clogged_closed;   /* clogged connections found closed at the end */
    uint32_t protocol_errors;  /* undecodable bytes from the router */
    uint64_t sent[SLOAD_GNU_TYPES];     /* offered inside the window */
    uint64_t received[SLOAD_GNU_TYPES]; /* copies delivered of what was offered inside the window */
    uint64_t unanswerable;     /* responses wanted with no request to answer (sent as requests) */
    uint64_t backlog_drops;    /* descriptors not offered: the socket's backlog was full */
    uint64_t foreign;          /* received descriptors this generator did not make */
    double window_s;
    sload_hist_t *latency[SLOAD_GNU_TYPES]; /* ns, by type, of those copies; owned */
    sload_hist_t *latency_all;
    sload_gnu_second_t *timeline; /* owned */
    uint32_t seconds;
    uint64_t rss_first_kb, rss_max_kb, rss_last_kb;
} sload_gnu_result_t;

/* The seed's mix: 15 % queries; pings 25, pongs 35, query hits 20, pushes 5. */
void sload_gnu_defaults(sload_gnu_config_t *cfg, uint16_t port, uint32_t connections, double rate);

/*
 * Runs one measurement. Returns 0 (errors are counted in *out) or a
 * negative errno when it could not start (-EINVAL bad config or trace,
 * -EMFILE too many connections for the descriptor limit, -ENOMEM, -ENOENT
 * trace not found). Free the result with sload_gnu_result_free.
 */
int sload_gnu_run(const sload_gnu_config_t *cfg, sload_gnu_result_t *out);
void sload_gnu_result_free(sload_gnu_result_t *out);

/* A process's resident set in KB (from /proc/pid/status), or 0. */
uint64_t sload_rss_kb(int32_t pid);

#ifdef __cplusplus
}
#endif

#endif
