/*
 * The seed's HTTP workload: one 8 KB page, and the response heads every
 * baseline server sends for it, so that all of them put the same bytes on
 * the wire.
 */
#ifndef SLOAD_HTTP_H
#define SLOAD_HTTP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLOAD_PAGE_SIZE 8192

/* The 8 KB page (HTML, SLOAD_PAGE_SIZE bytes, no NUL counted). Static; any thread. */
const char *sload_page(void);

/* How the response announces the connection's fate. */
enum sload_conn_header {
    SLOAD_CONN_NONE = 0,       /* HTTP/1.1 default: persistent, no header */
    SLOAD_CONN_CLOSE = 1,      /* "Connection: close" */
    SLOAD_CONN_KEEP_ALIVE = 2, /* "Connection: keep-alive" (an HTTP/1.0 client asked for it) */
};

/*
 * Formats a response head: "HTTP/1.1 <status> <reason>", Server,
 * Content-Type (omitted when NULL), Content-Length, the Connection header of
 * `conn`, and the blank line. Returns its length, or 0 when `cap` is too small.
 */
size_t sload_http_head(char *buf, size_t cap, int status, const char *content_type, size_t content_length,
                       int conn);

#ifdef __cplusplus
}
#endif

#endif
