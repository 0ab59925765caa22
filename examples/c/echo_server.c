/*
 * An echo server on Seda's socket layer, from C: one echo stage per shared
 * thread, bound to it, fed by the listener with the packets of the
 * connections that thread owns; each packet is written back without a copy
 * (the write's release callback gives the packet back once it is sent).
 *
 *     seda-echo-server [--port N] [--poller epoll|io_uring|poll|select]
 *                      [--threads N] [--seconds N] [--self-test]
 *
 * --self-test listens on an ephemeral port of 127.0.0.1, echoes through a
 * few clients of its own, checks every byte, prints the statistics and exits
 * (0 when all is well): what the tests run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <seda/seda.h>

static void packet_sent(void *ctx, const void *buf, int status)
{
    (void)buf;
    (void)status;
    seda_io_event_release(ctx); /* the packet whose bytes were the output */
}

/* The echo stage: runs on the thread that owns the connections it serves. */
static int echo(void *ctx, void **events, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        seda_io_event_t *ev = events[i];
        switch (ev->type) {
        case SEDA_IO_PACKET:
            if (seda_conn_write(ev->conn, ev->data, ev->len, packet_sent, ev) == 0)
                continue; /* released once sent */
            break;
        case SEDA_IO_UNWRITABLE: /* the client reads slower than it writes */
            seda_conn_read_stop(ev->conn);
            break;
        case SEDA_IO_WRITABLE: seda_conn_read_start(ev->conn); break;
        default: /* READ_EOF: its release closes the connection after the flush */ break;
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

/* ---- the self-test's clients ------------------------------------------------------ */

static int client(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int self_test(uint16_t port)
{
    enum { CLIENTS = 8, ROUNDS = 200 };
    int fd[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        if ((fd[i] = client(port)) < 0)
            return 1;
    char out[1500], in[1500];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CLIENTS; i++) {
            size_t len = 1 + (size_t)(r * 131 + i * 17) % sizeof out;
            for (size_t k = 0; k < len; k++)
                out[k] = (char)(r ^ i ^ (int)k);
            if (send(fd[i], out, len, MSG_NOSIGNAL) != (ssize_t)len)
                return 1;
            for (size_t got = 0; got < len;) {
                ssize_t n = recv(fd[i], in + got, len - got, 0);
                if (n <= 0)
                    return 1;
                got += (size_t)n;
            }
            if (memcmp(in, out, len) != 0)
                return 1;
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        shutdown(fd[i], SHUT_WR);
        char x;
        if (recv(fd[i], &x, 1, 0) != 0) /* the server closes after our EOF */
            return 1;
        close(fd[i]);
    }
    printf("self-test: %d clients x %d messages echoed\n", CLIENTS, ROUNDS);
    return 0;
}

int main(int argc, char **argv)
{
    uint16_t port = 7007;
    int poller = SEDA_POLLER_DEFAULT, seconds = 0, test = 0;
    uint32_t threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = (uint16_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--poller") && i + 1 < argc)
            poller = seda_poller_backend_parse(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--self-test"))
            test = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--port N] [--poller NAME] [--threads N] [--seconds N] "
                    "[--self-test]\n",
                    argv[0]);
            return 2;
        }
    }
    if (poller < 0) {
        fprintf(stderr, "unknown poller\n");
        return 2;
    }
    if (test)
        port = 0;

    seda_runtime_t *rt;
    seda_runtime_options_t ro = { .cpu_threads = threads, .poller = poller };
    int r = seda_runtime_create(&rt, &ro);
    if (r < 0) {
        fprintf(stderr, "seda_runtime_create: %s\n", seda_strerror(r));
        return 1;
    }
    uint32_t n = seda_runtime_cpu_threads(rt);
    seda_stage_t **stages = calloc(n, sizeof *stages);
    for (uint32_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "echo%u", i);
        seda_stage_options_t so = { .name = name,
                                    .handler = echo,
                                    .drop = drop,
                                    .queue_capacity = 4096,
                                    .bind_to_thread = 1,
                                    .thread_index = i };
        if ((r = seda_stage_create(rt, &so, &stages[i])) < 0) {
            fprintf(stderr, "seda_stage_create: %s\n", seda_strerror(r));
            return 1;
        }
    }
    seda_listen_options_t lo = { .host = "127.0.0.1", .port = port, .read_sinks = stages };
    seda_listener_t *ls;
    if ((r = seda_listen(rt, &lo, &ls)) < 0) {
        fprintf(stderr, "seda_listen: %s\n", seda_strerror(r));
        return 1;
    }
    printf("echo server on 127.0.0.1:%u, %u threads, %s\n", seda_listener_port(ls), n,
           seda_runtime_poller_describe(rt));
    fflush(stdout);

    int status = 0;
    if (test) {
        status = self_test(seda_listener_port(ls));
    } else if (seconds > 0) {
        sleep((unsigned)seconds);
    } else { /* until SIGINT or SIGTERM */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        int sig;
        sigwait(&set, &sig);
    }
    for (uint32_t i = 0; i < n; i++) {
        seda_io_stats_t st;
        seda_runtime_io_stats(rt, i, &st);
        printf("thread %u: %llu accepted, %llu packets, %llu bytes in, %llu bytes out, "
               "%llu receives, %llu sends\n",
               i, (unsigned long long)st.accepted, (unsigned long long)st.packets_in,
               (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
               (unsigned long long)st.reads, (unsigned long long)st.writes);
    }
    seda_listener_close(ls);
    for (uint32_t i = 0; i < n; i++)
        seda_stage_release(stages[i]);
    free(stages);
    seda_runtime_destroy(rt);
    if (test)
        printf("self-test: %s\n", status == 0 ? "ok" : "FAILED");
    return status;
}
