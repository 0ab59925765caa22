/*
 * Minimal but correct HTTP/1.1 request framing for the baseline servers:
 * a request head ends at the first CRLFCRLF; the request line and header
 * lines are checked enough to frame the next request (Content-Length bodies
 * are skipped; Transfer-Encoding is refused with 501), keep-alive follows
 * RFC 9112 (1.1 persistent unless "close"; 1.0 only with "keep-alive").
 */
#ifndef HTTP_REQUEST_H
#define HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct http_request {
    int status;            /* 200 or 404 to serve, or the error status (400, 431, 501, 505) */
    int head_only;         /* HEAD */
    int close;             /* the connection ends after this response */
    int conn_header;       /* enum sload_conn_header for the response */
    uint64_t body_length;  /* request body bytes to skip */
};

/*
 * Parses the head [p, p + len), which ends with CRLFCRLF, into *r.
 * Errors set r->status and r->close.
 */
void http_parse_request(const char *p, size_t len, struct http_request *r);

/* Prebuilds the responses (call once before serving). */
void http_responses_init(void);

/*
 * Appends the response for *r to iov (2 entries at most); returns the number
 * of entries appended.
 */
int http_response_iov(const struct http_request *r, struct iovec *iov);

/* The 431 response for a head that does not fit the buffer. */
int http_response_too_large(struct iovec *iov);

#endif
