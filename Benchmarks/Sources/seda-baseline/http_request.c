/* Request framing and prebuilt responses for the baseline HTTP servers (see http_request.h). */
#define _GNU_SOURCE
#include "http_request.h"
#include "sload_http.h"

#include <string.h>
#include <strings.h>

struct response {
    char head[256];
    size_t head_len;
    const char *body;
    size_t body_len;
};

/* [status kind][connection header] */
enum { R_OK, R_NOT_FOUND, R_BAD, R_TOO_LARGE, R_NOT_IMPL, R_VERSION, R_KINDS };
static struct response responses[R_KINDS][3];
static const char not_found_body[] = "<html><body><h1>404 Not Found</h1></body></html>\n";
static const char error_body[] = "<html><body><h1>Bad request</h1></body></html>\n";

void http_responses_init(void)
{
    static const int statuses[R_KINDS] = {200, 404, 400, 431, 501, 505};
    for (int k = 0; k < R_KINDS; k++)
        for (int c = 0; c < 3; c++) {
            struct response *r = &responses[k][c];
            r->body = k == R_OK ? sload_page() : k == R_NOT_FOUND ? not_found_body : error_body;
            r->body_len = k == R_OK ? SLOAD_PAGE_SIZE : k == R_NOT_FOUND ? sizeof not_found_body - 1
                                                                        : sizeof error_body - 1;
            r->head_len = sload_http_head(r->head, sizeof r->head, statuses[k], "text/html", r->body_len, c);
        }
}

static int kind_of(int status)
{
    switch (status) {
    case 200: return R_OK;
    case 404: return R_NOT_FOUND;
    case 431: return R_TOO_LARGE;
    case 501: return R_NOT_IMPL;
    case 505: return R_VERSION;
    default: return R_BAD;
    }
}

int http_response_iov(const struct http_request *q, struct iovec *iov)
{
    const struct response *r = &responses[kind_of(q->status)][q->conn_header];
    iov[0].iov_base = (void *)r->head;
    iov[0].iov_len = r->head_len;
    if (q->head_only)
        return 1;
    iov[1].iov_base = (void *)r->body;
    iov[1].iov_len = r->body_len;
    return 2;
}

int http_response_too_large(struct iovec *iov)
{
    struct http_request q = {.status = 431, .close = 1, .conn_header = SLOAD_CONN_CLOSE};
    return http_response_iov(&q, iov);
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Does the comma-separated list [v, v + n) hold `token` (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *token)
{
    size_t t = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == t && strncasecmp(v + s, token, t) == 0)
            return 1;
    }
    return 0;
}

static void fail(struct http_request *r, int status)
{
    r->status = status;
    r->close = 1;
    r->conn_header = SLOAD_CONN_CLOSE;
    r->body_length = 0;
}

void http_parse_request(const char *p, size_t len, struct http_request *r)
{
    memset(r, 0, sizeof *r);
    const char *end = p + len;
    const char *eol = memmem(p, len, "\r\n", 2);
    /* Request line: method SP target SP HTTP/x.y */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p) {
        fail(r, 400);
        return;
    }
    for (const char *c = p; c < sp1; c++)
        if (!is_tchar((unsigned char)*c)) {
            fail(r, 400);
            return;
        }
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (!sp2 || sp2 == target) {
        fail(r, 400);
        return;
    }
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(eol - version);
    int minor;
    if (vlen == 8 && memcmp(version, "HTTP/1.1", 8) == 0)
        minor = 1;
    else if (vlen == 8 && memcmp(version, "HTTP/1.0", 8) == 0)
        minor = 0;
    else {
        fail(r, vlen >= 5 && memcmp(version, "HTTP/", 5) == 0 ? 505 : 400);
        return;
    }
    for (const char *c = target; c < sp2; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            fail(r, 400);
            return;
        }
    size_t mlen = (size_t)(sp1 - p);
    int get = mlen == 3 && memcmp(p, "GET", 3) == 0;
    int head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;

    int conn_close = 0, conn_keep = 0, have_length = 0, chunked = 0;
    uint64_t length = 0;
    /* Header lines, up to the empty line that ends the head. */
    for (const char *line = eol + 2; line < end;) {
        const char *le = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (le == line)
            break;
        if (*line == ' ' || *line == '\t') { /* obsolete line folding */
            fail(r, 400);
            return;
        }
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line) {
            fail(r, 400);
            return;
        }
        for (const char *c = line; c < colon; c++)
            if (!is_tchar((unsigned char)*c)) {
                fail(r, 400);
                return;
            }
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nlen = (size_t)(colon - line), vl = (size_t)(ve - v);
        for (const char *c = v; c < ve; c++)
            if (*c == '\0' || *c == '\r' || *c == '\n') {
                fail(r, 400);
                return;
            }
        if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
            conn_close |= has_token(v, vl, "close");
            conn_keep |= has_token(v, vl, "keep-alive");
        } else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            uint64_t n = 0;
            if (vl == 0 || vl > 18) {
                fail(r, 400);
                return;
            }
            for (const char *c = v; c < ve; c++) {
                if (*c < '0' || *c > '9') {
                    fail(r, 400);
                    return;
                }
                n = n * 10 + (uint64_t)(*c - '0');
            }
            if (have_length && n != length) { /* conflicting lengths: request smuggling */
                fail(r, 400);
                return;
            }
            have_length = 1;
            length = n;
        } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            chunked = 1;
        }
        line = le + 2;
    }
    if (chunked) { /* bodies we cannot frame: refuse, and close */
        fail(r, have_length ? 400 : 501);
        return;
    }
    if (!get && !head) {
        fail(r, 501);
        return;
    }
    r->head_only = head;
    r->body_length = length;
    if (minor == 1) {
        r->close = conn_close;
        r->conn_header = conn_close ? SLOAD_CONN_CLOSE : SLOAD_CONN_NONE;
    } else {
        r->close = conn_close || !conn_keep;
        r->conn_header = r->close ? SLOAD_CONN_CLOSE : SLOAD_CONN_KEEP_ALIVE;
    }
    /* The page lives at / and /index.html (a query string is ignored). */
    size_t tlen = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tlen);
    if (q)
        tlen = (size_t)(q - target);
    int page = (tlen == 1 && target[0] == '/') || (tlen == 11 && memcmp(target, "/index.html", 11) == 0);
    r->status = page ? 200 : 404;
}
