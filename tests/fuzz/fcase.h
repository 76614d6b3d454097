/*
 * One randomised call of the public API, checked: the fuzz target, its
 * corpus replay and the soak test all run cases through fc_run.
 *
 * A case is decoded from a byte source (the fuzzer's input, or a seeded RNG
 * for the soak): the entry point (flat_attention, flat_attention_paged, a
 * plan executed, a plan run task by task), every size, stride, element type
 * and option, and the pointer relations between the buffers (aliased inputs,
 * an out that overlaps an input, NULLs, bad page tables). Every buffer lives
 * in one guarded arena. The call must then either
 *   - fail with a status other than FLAT_OK, a non-empty flat_last_error(),
 *     and not one byte of the arena changed; or
 *   - succeed with every output row and lse within the documented bound of
 *     the double reference, and no byte written outside out's elements and
 *     lse.
 * Sizes are small so that a case takes well under a millisecond.
 */
#ifndef FLAT_FUZZ_FCASE_H
#define FLAT_FUZZ_FCASE_H

#include <stddef.h>
#include <stdint.h>

/* Where a case's choices come from: bytes (zeros once they run out), or an
 * RNG when `bytes` is NULL. */
typedef struct {
    const uint8_t *bytes;
    size_t size, at;
    uint64_t rng;
} fc_source;

typedef struct {
    int status;        /* the flat_status the call returned */
    int entry;         /* 0 attention, 1 paged, 2 plan, 3 paged plan run task by task */
    char failure[1024]; /* empty when the case held; else what broke */
} fc_result;

/* Decodes, runs and checks one case. Thread-safe (no shared state). */
void fc_run(fc_source *src, fc_result *res);

/* The entry point names, for reports. */
const char *fc_entry_name(int entry);

#endif
