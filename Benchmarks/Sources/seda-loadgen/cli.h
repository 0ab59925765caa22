/* Shared pieces of the seda-loadgen subcommands. */
#ifndef LOADGEN_CLI_H
#define LOADGEN_CLI_H

#include <stdint.h>

/* "5", "5s", "250ms", "2m" -> seconds; -1 when malformed. */
double cli_seconds(const char *s);
/* An unsigned integer with an optional k (1000) suffix; -1 when malformed. */
long long cli_count(const char *s);

int loadgen_asocket(int argc, char **argv);
int loadgen_echo(int argc, char **argv);
int loadgen_http(int argc, char **argv);
int loadgen_gnutella(int argc, char **argv);

#endif
