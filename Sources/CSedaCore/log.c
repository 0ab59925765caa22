/* The runtime's log hook (seda_runtime_options.log) and its default. */
#include <stdarg.h>
#include <stdio.h>

#include "runtime_internal.h"

static const char *level_name(int level)
{
    switch (level) {
    case SEDA_LOG_DEBUG: return "debug";
    case SEDA_LOG_INFO: return "info";
    case SEDA_LOG_WARNING: return "warning";
    default: return "error";
    }
}

void seda__log(const seda_runtime_t *rt, int level, const char *stage, const char *fmt, ...)
{
    seda_log_fn fn = rt ? rt->log : NULL;
    if (!fn && level < SEDA_LOG_WARNING)
        return;
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (fn) {
        fn(rt->log_ctx, level, stage, message);
        return;
    }
    /* One fprintf: stdio locks the stream, so lines from several threads
     * do not interleave. */
    if (stage)
        fprintf(stderr, "seda: %s: stage '%s': %s\n", level_name(level), stage, message);
    else
        fprintf(stderr, "seda: %s: %s\n", level_name(level), message);
}
