"""Helpers of the suite: the ISAs this CPU runs, test data, the README's bounds."""
import platform

import numpy as np

import flat


def cpu_flags():
    """The first "flags" line of /proc/cpuinfo as a set (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_isas():
    """Kernel tables this CPU runs, from /proc/cpuinfo as tests/run.sh decides them
    (plus avx512_vnni, 0.3: AVX-512 with AVX512_VNNI).

    flat must run every one: FLAT_ERROR_UNSUPPORTED for any of them fails."""
    isas = ["scalar"]
    machine = platform.machine()
    if machine in ("x86_64", "AMD64", "amd64"):
        flags = cpu_flags()
        if {"avx2", "fma"} <= flags:
            isas.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            isas.append("avx512")
            if "avx512_bf16" in flags:
                isas.append("avx512_bf16")
                # AMX (0.3): the flags appear only where the kernel supports tile state
                if {"amx_tile", "amx_bf16"} <= flags:
                    isas.append("amx_bf16")
            if "avx512_vnni" in flags:
                isas.append("avx512_vnni")
    elif machine in ("aarch64", "arm64"):
        isas.append("neon")
    return isas


ISAS = cpu_isas()
# Tables with bf16 products (they round Q, K, P and V: their own bound, and
# paged calls not bitwise the contiguous ones).
BF16_ISAS = ("avx512_bf16", "amx_bf16")
# Tables with int8 products on int8 and int4 caches (fp32 products, the
# avx512 table's bits, on every other K/V type).
INT8_ISAS = ("avx512_vnni",)
# flat_isa_detect (AUTO) takes none of these: the best fp32-product table.
AUTO_ISA = [i for i in ISAS if i not in BF16_ISAS + INT8_ISAS][-1]
# Relative row bound of int8 products (flat.h, FLAT_PRECISION_INT8), for
# logits of O(1), against the reference on the dequantized cache.
INT8_ROW_TOL = 2e-2
DATAFLOWS = ["auto", "flat", "flash", "decode"]
DTYPES = ["float32", "float16", "bfloat16"]


def make(rng, shape, dtype="float32", mag=1.0):
    """Uniform data in [-mag, mag] as the C suites use (logits of O(1)), in
    `dtype` (bfloat16 as uint16 bits)."""
    x = rng.uniform(-mag, mag, shape).astype(np.float32)
    if dtype == "bfloat16":
        return flat.to_bfloat16(x)
    return x.astype(dtype)


def as_f64(x):
    """The values flat reads from an array, in float64 (uint16 is bfloat16)."""
    if x.dtype == np.uint16:
        return flat.from_bfloat16(x).astype(np.float64)
    return x.astype(np.float64)


def row_tol(out_dtype, isa):
    """The README's bounds as tests/test_dtypes.c applies them: (row bound, lse
    bound as a function of the reference lse). Rows: relative 2-norm, by the
    output's type; lse: 1e-5 * max(1, |ref|). The avx512_bf16 and amx_bf16
    tables (bf16 products) have their own: rows 1e-2, lse 5e-3 absolute, for
    logits of O(1)."""
    tol = {np.dtype(np.float32): 1e-5, np.dtype(np.float16): 1e-3, np.dtype(np.uint16): 8e-3}
    if isa in BF16_ISAS:
        return 1e-2, lambda ref: np.full_like(ref, 5e-3)
    return tol[np.dtype(out_dtype)], lambda ref: 1e-5 * np.maximum(1.0, np.abs(ref))
