/* The servers of seda-baseline, one entry point each (argv[0] is the subcommand). */
#ifndef BASELINE_H
#define BASELINE_H

int baseline_asocket_threaded(int argc, char **argv);
int baseline_echo_uv(int argc, char **argv);
int baseline_http_pool(int argc, char **argv);
int baseline_http_thread(int argc, char **argv);
int baseline_http_epoll(int argc, char **argv);
int baseline_gnutella_epoll(int argc, char **argv);

#endif
