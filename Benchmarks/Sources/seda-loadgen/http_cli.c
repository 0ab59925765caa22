/* seda-loadgen http: to be written next. */
#include "cli.h"
#include <stdio.h>
int loadgen_http(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "not yet\n"); return 2; }
