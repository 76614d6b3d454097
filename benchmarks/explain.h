/* Which kernel table and dataflow a flat_attention call used, from the
 * runtime's own explanation (flat.h: FLAT_VERBOSE=1 prints why). */
#ifndef BENCH_EXPLAIN_H
#define BENCH_EXPLAIN_H

#include <stddef.h>
#include <time.h>

#include "workload.h"

static inline double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/*
 * Runs flat_attention on w once with FLAT_VERBOSE=1 and stderr sent to a
 * temporary file, then restores both. *seconds receives the duration of the
 * call alone (the redirection is outside it); `line` the runtime's line
 * "flat: isa=... dataflow=FLAT|FLASH ... because ...", or "" if it printed
 * none. Returns the call's status.
 */
flat_status flat_call_explained(const workload *w, const flat_options *opt, double *seconds,
                                char *line, size_t line_len);

/* Copies the value of "key=" in an explanation line ("dataflow=" -> "FLASH")
 * into out; "?" when absent. */
void explain_field(const char *line, const char *key, char *out, size_t out_len);

#endif
