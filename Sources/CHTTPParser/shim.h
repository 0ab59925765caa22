/* nodejs/http-parser 2.9.4 for Swift (Debian: libhttp-parser-dev). */
#include <http_parser.h>
