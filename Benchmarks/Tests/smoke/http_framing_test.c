/*
 * HTTP framing of the baseline servers, from a raw-socket client:
 *   http_framing_test --port N --full   every case below
 *   http_framing_test --port N --bare   only what the bare responder promises
 *                                       (pipelined and split requests)
 * Exit 0 when every case passes, 1 otherwise.
 */
#define _GNU_SOURCE
#include "sload_http.h"
#include "sload_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static uint16_t port;
static int failures;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0}; /* every read is bounded */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sload_set_nodelay(fd);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void say(int fd, const char *s) { sload_write_all(fd, s, strlen(s)); }

struct response {
    int status;
    long length;
    int close;      /* Connection: close */
    int keep_alive; /* Connection: keep-alive */
    char body[SLOAD_PAGE_SIZE + 1];
};

/* Bytes read past the response, kept for the next one on the same connection. */
static char held[65536];
static size_t held_len;

static int fill(int fd)
{
    if (held_len == sizeof held)
        return -1;
    ssize_t n = recv(fd, held + held_len, sizeof held - held_len, 0);
    if (n <= 0)
        return -1;
    held_len += (size_t)n;
    return 0;
}

static void take(size_t n)
{
    memmove(held, held + n, held_len - n);
    held_len -= n;
}

/* Reads one response; 0, or -1 on EOF, timeout or a malformed head. */
static int read_response(int fd, struct response *r, int head_only)
{
    memset(r, 0, sizeof *r);
    char *end;
    while (!(end = memmem(held, held_len, "\r\n\r\n", 4)))
        if (fill(fd) != 0)
            return -1;
    size_t head = (size_t)(end + 4 - held);
    if (sscanf(held, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    r->length = -1;
    for (char *l = memmem(held, head, "\r\n", 2) + 2; l < held + head - 2;) {
        char *le = memmem(l, (size_t)(held + head - l), "\r\n", 2);
        if (strncasecmp(l, "Content-Length:", 15) == 0)
            r->length = strtol(l + 15, NULL, 10);
        if (strncasecmp(l, "Connection:", 11) == 0) {
            r->close |= memmem(l, (size_t)(le - l), "close", 5) != NULL;
            r->keep_alive |= memmem(l, (size_t)(le - l), "keep-alive", 10) != NULL;
        }
        l = le + 2;
    }
    take(head);
    if (head_only || r->length <= 0)
        return 0;
    while (held_len < (size_t)r->length)
        if (fill(fd) != 0)
            return -1;
    memcpy(r->body, held, (size_t)r->length < sizeof r->body ? (size_t)r->length : sizeof r->body - 1);
    take((size_t)r->length);
    return 0;
}

/* After a response that closes: the connection ends with nothing more. */
static int at_eof(int fd)
{
    if (held_len)
        return 0;
    char c;
    return recv(fd, &c, 1, 0) == 0;
}

#define CHECK(name, cond)                                                                                          \
    do {                                                                                                           \
        if (cond)                                                                                                  \
            printf("ok   %s\n", name);                                                                             \
        else {                                                                                                     \
            printf("FAIL %s (%s)\n", name, #cond);                                                                 \
            failures++;                                                                                            \
        }                                                                                                          \
    } while (0)

static int is_page(const struct response *r)
{
    return r->status == 200 && r->length == SLOAD_PAGE_SIZE && memcmp(r->body, sload_page(), SLOAD_PAGE_SIZE) == 0;
}

static void pipelined(void)
{
    int fd = dial();
    held_len = 0;
    say(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"
            "GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    struct response r;
    int good = 1;
    for (int i = 0; i < 3; i++)
        good &= read_response(fd, &r, 0) == 0 && is_page(&r);
    CHECK("three pipelined requests get three pages, in one write", good);
    close(fd);
}

/* More pipelined requests than the socket buffers hold: the server's writes
 * come up short and must resume where they stopped, in order. */
static void deep_pipeline(void)
{
    enum { DEPTH = 300 };
    int fd = dial();
    held_len = 0;
    static char burst[DEPTH * 64];
    size_t len = 0;
    for (int i = 0; i < DEPTH; i++)
        len += (size_t)snprintf(burst + len, sizeof burst - len, "GET /index.html?%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
    sload_write_all(fd, burst, len);
    struct response r;
    int got = 0;
    while (got < DEPTH && read_response(fd, &r, 0) == 0 && is_page(&r))
        got++;
    CHECK("300 pipelined requests (2.5 MB of answers) all answered, in order", got == DEPTH);
    close(fd);
}

static void split(void)
{
    int fd = dial();
    held_len = 0;
    const char *req = "GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n";
    for (const char *p = req; *p; p++) {
        sload_write_all(fd, p, 1);
        usleep(200);
    }
    struct response r;
    CHECK("a request sent a byte at a time", read_response(fd, &r, 0) == 0 && is_page(&r));
    say(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK("then another on the same connection", read_response(fd, &r, 0) == 0 && is_page(&r));
    close(fd);
}

static void full(void)
{
    struct response r;
    int fd;

    fd = dial();
    held_len = 0;
    say(fd, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK("HEAD: status and length, no body",
          read_response(fd, &r, 1) == 0 && r.status == 200 && r.length == SLOAD_PAGE_SIZE);
    say(fd, "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK("404 for another path, after HEAD on the same connection",
          read_response(fd, &r, 0) == 0 && r.status == 404 && !r.close);
    say(fd, "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK("keep-alive after a 404; a leading empty line ignored", read_response(fd, &r, 0) == 0 && is_page(&r));
    say(fd, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    int a = read_response(fd, &r, 0) == 0 && is_page(&r);
    int b = read_response(fd, &r, 0) == 0 && is_page(&r);
    CHECK("a request body is skipped, the next request framed after it", a && b);
    say(fd, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    CHECK("Connection: close is answered with close, then EOF",
          read_response(fd, &r, 0) == 0 && is_page(&r) && r.close && at_eof(fd));
    close(fd);

    fd = dial();
    held_len = 0;
    say(fd, "GET / HTTP/1.0\r\n\r\n");
    CHECK("HTTP/1.0 without keep-alive: the page, then EOF", read_response(fd, &r, 0) == 0 && is_page(&r) && at_eof(fd));
    close(fd);

    fd = dial();
    held_len = 0;
    say(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    a = read_response(fd, &r, 0) == 0 && is_page(&r) && r.keep_alive;
    say(fd, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    b = read_response(fd, &r, 0) == 0 && is_page(&r);
    CHECK("HTTP/1.0 with keep-alive stays open", a && b);
    close(fd);

    static const struct {
        const char *name, *request;
        int status;
    } bad[] = {
        {"a malformed request line: 400", "BLAH\r\n\r\n", 400},
        {"an unknown method: 501", "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"POST: 501", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 501},
        {"Transfer-Encoding: 501", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"conflicting Content-Length: 400", "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400},
        {"Content-Length with Transfer-Encoding: 400",
         "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"a header line without a colon: 400", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
        {"HTTP/2.0 on this port: 505", "GET / HTTP/2.0\r\n\r\n", 505},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fd = dial();
        held_len = 0;
        say(fd, bad[i].request);
        CHECK(bad[i].name, read_response(fd, &r, 0) == 0 && r.status == bad[i].status && r.close && at_eof(fd));
        close(fd);
    }

    fd = dial();
    held_len = 0;
    say(fd, "GET / HTTP/1.1\r\nX-Big: ");
    static char filler[20000];
    memset(filler, 'a', sizeof filler);
    sload_write_all(fd, filler, sizeof filler);
    CHECK("a head larger than 16 KB: 431", read_response(fd, &r, 0) == 0 && r.status == 431 && r.close);
    close(fd);
}

int main(int argc, char **argv)
{
    int bare = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (uint16_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--bare") == 0)
            bare = 1;
        else if (strcmp(argv[i], "--full") == 0)
            bare = 0;
    }
    if (port == 0) {
        fprintf(stderr, "usage: http_framing_test --port N [--full|--bare]\n");
        return 2;
    }
    pipelined();
    deep_pipeline();
    split();
    if (!bare)
        full();
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
