/*
 * Starting and stopping a server process for a benchmark run: the server
 * prints "<name>: listening on 127.0.0.1:<port>" on stdout (LOAD.md), its
 * stderr goes to a file the benchmark reads afterwards. Errors are negative
 * errno values.
 */
#ifndef SLOAD_SPAWN_H
#define SLOAD_SPAWN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Starts argv (argv[argc] must be NULL) with stdout on a pipe and stderr
 * appended to stderr_path (NULL: inherited). Stores the pid and the pipe's
 * read end. Returns 0 or a negative errno.
 */
int sload_spawn(const char *const *argv, const char *stderr_path, int32_t *pid, int *stdout_fd);

/*
 * Reads the server's stdout until a line holds "127.0.0.1:<port>" (followed by
 * a newline, space or "/", as in seda-httpd's "http://127.0.0.1:<port>/"), for at
 * most timeout_s. Returns the port, -ETIMEDOUT, or -EPIPE when the server
 * exited first.
 */
int sload_wait_port(int stdout_fd, double timeout_s);

/*
 * Sends SIGINT, waits up to timeout_s for the exit, then SIGKILL. Returns
 * the exit status (0..255), 128 + signal when killed, or a negative errno.
 */
int sload_stop(int32_t pid, double timeout_s);

#ifdef __cplusplus
}
#endif

#endif
