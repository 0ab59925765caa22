/* libaio for Swift (Debian: libaio-dev). Without these before <libaio.h>, a
 * clean build that also imports CURing fails on fd_set. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 500
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <libaio.h>
