/* A program built against an installed flat, the way an engine would. With
 * one key, softmax gives it weight exactly 1, so out must equal v bitwise. */
#include <flat.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    float q[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, k[4] = {0.5f, -1, 2, 0}, v[3] = {3, -4, 0.25f};
    float out[2 * 3], lse[2];
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, 1, 2, 1, 4);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, 1, 1, 1, 4);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_F32, 1, 1, 1, 3);
    flat_tensor to = flat_tensor_bhsd(out, FLAT_F32, 1, 2, 1, 3);
    flat_options opt;
    memset(&opt, 0, sizeof opt);
    opt.lse = lse;
    flat_status s = flat_attention(&tq, &tk, &tv, &to, &opt);
    if (s != FLAT_OK) {
        fprintf(stderr, "flat_attention: %s: %s\n", flat_status_string(s), flat_last_error());
        return 1;
    }
    if (memcmp(out, v, sizeof v) != 0 || memcmp(out + 3, v, sizeof v) != 0) {
        fprintf(stderr, "wrong result: %g %g %g\n", out[0], out[1], out[2]);
        return 1;
    }
    if (strcmp(flat_version(), FLAT_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", FLAT_VERSION_STRING, flat_version());
        return 1;
    }
    printf("consumer (C): flat %s, isa %s: ok\n", flat_version(), flat_isa_name(flat_isa_detect()));
    return 0;
}
