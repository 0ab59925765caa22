/* The seed's 8 KB page and the baselines' response heads (see sload_http.h). */
#include "sload_http.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static char page[SLOAD_PAGE_SIZE + 1];
static pthread_once_t page_once = PTHREAD_ONCE_INIT;

static void build_page(void)
{
    static const char head[] = "<!DOCTYPE html>\n<html><head><title>Seda: 8 KB page</title></head><body>\n";
    static const char tail[] = "</body></html>\n";
    static const char line[] = "<p>The seed's benchmark page: 8 KB, served from memory.</p>\n";
    size_t at = 0;
    memcpy(page, head, sizeof head - 1);
    at += sizeof head - 1;
    while (at + sizeof line - 1 + sizeof tail - 1 <= SLOAD_PAGE_SIZE) {
        memcpy(page + at, line, sizeof line - 1);
        at += sizeof line - 1;
    }
    /* Pad with an HTML comment-free filler so the size is exact. */
    while (at + sizeof tail - 1 < SLOAD_PAGE_SIZE)
        page[at++] = ' ';
    memcpy(page + at, tail, sizeof tail - 1);
    page[SLOAD_PAGE_SIZE] = '\0';
}

const char *sload_page(void)
{
    pthread_once(&page_once, build_page);
    return page;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

size_t sload_http_head(char *buf, size_t cap, int status, const char *content_type, size_t content_length,
                       int conn)
{
    const char *c = conn == SLOAD_CONN_CLOSE        ? "Connection: close\r\n"
                    : conn == SLOAD_CONN_KEEP_ALIVE ? "Connection: keep-alive\r\n"
                                                    : "";
    int n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\nServer: seda-baseline\r\n%s%s%sContent-Length: %zu\r\n%s\r\n",
                     status, reason(status), content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", content_length, c);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
