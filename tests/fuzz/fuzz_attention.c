/*
 * libFuzzer target over flat_attention, flat_attention_paged and the plan
 * calls: the input bytes choose the call (fcase.h); a call that neither
 * fails cleanly (status, message, nothing written) nor matches the double
 * reference aborts with the reason. Build and run:
 *
 *   CC=clang cmake -S . -B build/fuzz -DFLAT_BUILD_FUZZ=ON -DFLAT_BUILD_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_attention
 *   build/fuzz/tests/fuzz/fuzz_attention -max_total_time=3600 corpus-dir tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>

#include "fcase.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_source src = {data, size, 0, 0};
    fc_result r;
    fc_run(&src, &r);
    if (r.failure[0]) {
        fprintf(stderr, "fuzz_attention: %s (status %d): %s\n", fc_entry_name(r.entry),
                r.status, r.failure);
        abort();
    }
    return 0;
}
