/* Kernel-table selection (the only place that chooses kernels). */
#ifndef FLAT_DISPATCH_H
#define FLAT_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "flat.h"
#include "ukernel.h"

/* The tables compiled into this build, best first; *count receives their
 * number. Tests and benchmarks iterate this list. */
const flat_ukernels *const *flat_dispatch_tables(int *count);

/* Non-zero when the host CPU (and OS) can run table t. */
int flat_dispatch_runnable(const flat_ukernels *t);

/* The table for `isa` (AUTO: FLAT_ISA or the best runnable). On failure
 * returns NULL after setting the thread's error message; *status receives
 * FLAT_ERROR_UNSUPPORTED (ISA not built or not runnable here) or
 * FLAT_ERROR_INVALID_ARGUMENT (not an ISA value, or FLAT_ISA unparsable). */
const flat_ukernels *flat_dispatch_select(flat_isa isa, flat_status *status);

/* The table a call runs: opt.isa when not AUTO, else FLAT_ISA when set, else
 * the precision policy (flat_precision in flat.h) for these element types.
 * `why` (n bytes) receives the reason in words, for FLAT_VERBOSE and
 * flat_plan_describe. NULL on failure, as flat_dispatch_select. */
const flat_ukernels *flat_dispatch_choose(flat_isa isa, int32_t precision, flat_dtype q_dtype,
                                          flat_dtype kv_dtype, flat_status *status, char *why,
                                          size_t n);

/* Non-zero when table t implements both element types; otherwise sets the
 * thread's error message and *status (FLAT_ERROR_UNSUPPORTED) and returns 0:
 * a combination a table lacks is an error, never a silent fallback. */
int flat_dispatch_takes(const flat_ukernels *t, flat_dtype q_dtype, flat_dtype kv_dtype,
                        flat_status *status);

#endif
