/* The thread-local last-error message. */
#ifndef FLAT_ERROR_H
#define FLAT_ERROR_H

#include "flat.h"

/* Records a printf-style message for flat_last_error() and returns `s`. */
flat_status flat_error(flat_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears this thread's message (at the start of every API call). */
void flat_error_clear(void);

#endif
