/* liburing for Swift (Debian: liburing-dev). */
#include <liburing.h>
