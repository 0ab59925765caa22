/*
 * Seda servers for seda-bench echo and asocket, written on the C API
 * (include/seda/socket.h): one stage per shared thread, bound to it, fed by
 * a listener with the connections that thread owns, so a packet, its
 * handler and its answer stay on one thread.
 *
 *  - echo: every packet is written back without a copy (the write's release
 *    callback gives the packet back once it is sent); reading pauses while
 *    the client does not keep up (UNWRITABLE / WRITABLE).
 *  - asocket: the seed's server: counts the bytes of each connection and
 *    answers each complete packet of packet_size bytes with ack_size bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seda_bench.h"

struct seda_bench_server {
    seda_runtime_t *rt;
    seda_stage_t **stages;
    uint32_t threads;
    seda_listener_t *ls;
    int app;
    uint32_t packet_size, ack_size;
    char ack[256];
};

/* The per-connection count of the aSocket server. */
struct asocket_conn {
    uint64_t bytes, acked;
};

static void packet_sent(void *ctx, const void *buf, int status)
{
    (void)buf;
    (void)status;
    seda_io_event_release(ctx);
}

static void flow(seda_io_event_t *ev)
{
    if (ev->type == SEDA_IO_UNWRITABLE)
        seda_conn_read_stop(ev->conn);
    else if (ev->type == SEDA_IO_WRITABLE)
        seda_conn_read_start(ev->conn);
}

static int echo_handler(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET &&
            seda_conn_write(ev->conn, ev->data, ev->len, packet_sent, ev) == 0)
            continue; /* released once sent */
        flow(ev);
        seda_io_event_release(ev);
    }
    return 0;
}

static int asocket_handler(void *ctx, void **events, size_t n)
{
    struct seda_bench_server *s = ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        if (ev->type == SEDA_IO_PACKET) {
            struct asocket_conn *a = seda_conn_user(ev->conn);
            if (!a) {
                a = calloc(1, sizeof *a);
                if (a)
                    seda_conn_set_user(ev->conn, a, free);
            }
            if (a) {
                a->bytes += ev->len;
                uint64_t due = a->bytes / s->packet_size;
                for (; a->acked < due; a->acked++)
                    seda_conn_write_copy(ev->conn, s->ack, s->ack_size);
            }
        } else {
            flow(ev);
        }
        seda_io_event_release(ev);
    }
    return 0;
}

static void drop(void *ctx, void *event)
{
    (void)ctx;
    seda_io_event_release(event);
}

void seda_bench_server_stop(seda_bench_server_t *s)
{
    if (!s)
        return;
    seda_listener_close(s->ls);
    for (uint32_t i = 0; i < s->threads; i++)
        if (s->stages[i])
            seda_stage_release(s->stages[i]);
    seda_runtime_destroy(s->rt);
    free(s->stages);
    free(s);
}

int seda_bench_server_start(const seda_bench_server_options_t *o, seda_bench_server_t **out)
{
    if (!o || !out || (o->app != SEDA_BENCH_SERVER_ECHO && o->app != SEDA_BENCH_SERVER_ASOCKET) ||
        (o->app == SEDA_BENCH_SERVER_ASOCKET &&
         (o->packet_size == 0 || o->ack_size == 0 || o->ack_size > 256)))
        return -EINVAL;
    struct seda_bench_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->app = o->app;
    s->packet_size = o->packet_size;
    s->ack_size = o->ack_size;
    memset(s->ack, '.', sizeof s->ack);
    seda_runtime_options_t ro = { .cpu_threads = o->threads, .poller = o->poller };
    int r = seda_runtime_create(&s->rt, &ro);
    if (r < 0) {
        free(s);
        return r;
    }
    s->threads = seda_runtime_cpu_threads(s->rt);
    s->stages = calloc(s->threads, sizeof *s->stages);
    if (!s->stages) {
        seda_runtime_destroy(s->rt);
        free(s);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->threads; i++) {
        char name[32];
        snprintf(name, sizeof name, "server%u", i);
        seda_stage_options_t so = {
            .name = name,
            .handler = o->app == SEDA_BENCH_SERVER_ECHO ? echo_handler : asocket_handler,
            .ctx = s,
            .drop = drop,
            .queue_capacity = 65536,
            .bind_to_thread = 1,
            .thread_index = i,
        };
        if ((r = seda_stage_create(s->rt, &so, &s->stages[i])) < 0) {
            seda_bench_server_stop(s);
            return r;
        }
    }
    seda_listen_options_t lo = {
        .host = "127.0.0.1",
        .port = o->port,
        .backlog = 4096,
        .accept_mode = o->accept_mode,
        .read_sinks = s->stages,
        .conn.idle_timeout_ns = o->idle_timeout_ns,
    };
    if ((r = seda_listen(s->rt, &lo, &s->ls)) < 0) {
        seda_bench_server_stop(s);
        return r;
    }
    *out = s;
    return 0;
}

uint16_t seda_bench_server_port(const seda_bench_server_t *s)
{
    return seda_listener_port(s->ls);
}

const char *seda_bench_server_describe(const seda_bench_server_t *s)
{
    return seda_runtime_poller_describe(s->rt);
}

void seda_bench_server_stats(const seda_bench_server_t *s, seda_io_stats_t *total)
{
    memset(total, 0, sizeof *total);
    for (uint32_t i = 0; i < s->threads; i++) {
        seda_io_stats_t st;
        if (seda_runtime_io_stats(s->rt, i, &st) < 0)
            continue;
        total->accepted += st.accepted;
        total->packets_in += st.packets_in;
        total->bytes_in += st.bytes_in;
        total->bytes_out += st.bytes_out;
        total->reads += st.reads;
        total->writes += st.writes;
        total->connections_open += st.connections_open;
        total->stalls += st.stalls;
        total->emfile_episodes += st.emfile_episodes;
    }
}
