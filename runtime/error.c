/* Status names and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

static _Thread_local char last_error[256];

flat_status flat_error(flat_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

void flat_error_clear(void) { last_error[0] = '\0'; }

const char *flat_last_error(void) { return last_error; }

const char *flat_status_string(flat_status s)
{
    switch (s) {
    case FLAT_OK: return "FLAT_OK";
    case FLAT_ERROR_INVALID_ARGUMENT: return "FLAT_ERROR_INVALID_ARGUMENT";
    case FLAT_ERROR_UNSUPPORTED: return "FLAT_ERROR_UNSUPPORTED";
    case FLAT_ERROR_OUT_OF_MEMORY: return "FLAT_ERROR_OUT_OF_MEMORY";
    }
    return "FLAT_ERROR_UNKNOWN";
}

const char *flat_version(void) { return FLAT_VERSION_STRING; }
