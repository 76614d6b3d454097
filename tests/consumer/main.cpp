// A C++ program built against an installed flat: the header's extern "C"
// block, its enums and structs as seen from C++11, and a threaded call.
// Every query is zero, so each row gives all keys the same weight and its
// output is the mean of the V rows; its lse is log(number of keys).
#include <flat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

const int64_t kQueryHeads = 2, kKvHeads = 1, kRows = 3, kKeys = 4, kDim = 8;

bool close(float got, double want)
{
    return std::fabs(got - want) <= 1e-6 * (1 + std::fabs(want));
}

// The first row whose output or lse is off, or -1.
int64_t first_wrong_row(const std::vector<float> &v, const std::vector<float> &out,
                        const std::vector<float> &lse)
{
    for (int64_t r = 0; r < kQueryHeads * kRows; r++) {
        if (!close(lse[r], std::log(static_cast<double>(kKeys))))
            return r;
        for (int64_t d = 0; d < kDim; d++) {
            double mean = 0;
            for (int64_t j = 0; j < kKeys; j++)
                mean += v[j * kDim + d] / kKeys;
            if (!close(out[r * kDim + d], mean))
                return r;
        }
    }
    return -1;
}

} // namespace

int main()
{
    std::vector<float> q(kQueryHeads * kRows * kDim, 0.0f), k(kKvHeads * kKeys * kDim),
        v(kKvHeads * kKeys * kDim), out(kQueryHeads * kRows * kDim),
        lse(kQueryHeads * kRows);
    for (size_t i = 0; i < k.size(); i++) {
        k[i] = 0.25f * static_cast<float>(i % 5);
        v[i] = static_cast<float>(i % 7) - 3.0f;
    }
    flat_tensor tq = flat_tensor_bhsd(q.data(), FLAT_F32, 1, kQueryHeads, kRows, kDim);
    flat_tensor tk = flat_tensor_bhsd(k.data(), FLAT_F32, 1, kKvHeads, kKeys, kDim);
    flat_tensor tv = flat_tensor_bhsd(v.data(), FLAT_F32, 1, kKvHeads, kKeys, kDim);
    flat_tensor to = flat_tensor_bhsd(out.data(), FLAT_F32, 1, kQueryHeads, kRows, kDim);
    flat_options opt = {};
    opt.lse = lse.data();
    opt.num_threads = 2;
    opt.dataflow = FLAT_DATAFLOW_FLASH;
    flat_status s = flat_attention(&tq, &tk, &tv, &to, &opt);
    if (s != FLAT_OK) {
        std::fprintf(stderr, "flat_attention: %s: %s\n", flat_status_string(s),
                     flat_last_error());
        return 1;
    }
    int64_t bad = first_wrong_row(v, out, lse);
    if (bad >= 0) {
        std::fprintf(stderr, "wrong result in row %lld: out[0] %g, lse %g\n",
                     static_cast<long long>(bad), out[bad * kDim], lse[bad]);
        return 1;
    }
    if (std::strcmp(flat_version(), FLAT_VERSION_STRING) != 0) {
        std::fprintf(stderr, "header %s, library %s\n", FLAT_VERSION_STRING, flat_version());
        return 1;
    }
    std::printf("consumer (C++): flat %s, isa %s, GQA with 2 threads: ok\n", flat_version(),
                flat_isa_name(flat_isa_detect()));
    return 0;
}
