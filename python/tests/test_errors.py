"""Errors: each C status as its FlatError subclass with flat_last_error()'s
text; Python-side refusals; NotImplementedError for what flat 0.2 cannot
do; out never touched by a failed call."""
import threading

import numpy as np
import pytest

import flat
from flat import errors
from support import make

B, HQ, HKV, SQ, SK, D = 2, 4, 2, 6, 10, 8
SENTINEL = 7.25


@pytest.fixture
def qkv(rng):
    return make(rng, (B, HQ, SQ, D)), make(rng, (B, HKV, SK, D)), make(rng, (B, HKV, SK, D))


def fresh_out():
    return np.full((B, HQ, SQ, D), SENTINEL, np.float32)


# name: (keywords, exception, words of the message)
C_ERRORS = {
    "kv_lens out of range": ({"kv_lens": [10, 11]}, flat.InvalidArgumentError,
                             "opt.kv_lens[1] (11) outside [0, 10]"),
    "negative kv_lens": ({"kv_lens": [-1, 3]}, flat.InvalidArgumentError, "opt.kv_lens[0] (-1)"),
    "negative window": ({"window": (-2, 0)}, flat.InvalidArgumentError,
                        "opt.window_left (-2) must be >= 0 (0: no left bound)"),
    "negative softcap": ({"softcap": -1.0}, flat.InvalidArgumentError,
                         "opt.softcap (-1) must be finite and >= 0"),
    "infinite softcap": ({"softcap": np.inf}, flat.InvalidArgumentError, "opt.softcap (inf)"),
    "nan sink": ({"sinks": [0, np.nan, 0, 0]}, flat.InvalidArgumentError,
                 "opt.sinks[1] (nan) must be finite"),
    "inf slope": ({"alibi_slopes": [0, 0, np.inf, 0]}, flat.InvalidArgumentError,
                  "opt.alibi_slopes[2] (inf) must be finite"),
    "negative scale": ({"scale": -0.5}, flat.InvalidArgumentError, "scale"),
    "negative threads": ({"num_threads": -2}, flat.InvalidArgumentError, "num_threads"),
}


@pytest.mark.parametrize("case", list(C_ERRORS))
def test_c_errors(qkv, case):
    kw, exc, words = C_ERRORS[case]
    out = fresh_out()
    with pytest.raises(exc) as e:
        flat.attention(*qkv, out=out, return_lse=True, **kw)
    assert words in e.value.message and words in str(e.value)
    assert str(e.value).startswith("flat_attention: FLAT_ERROR_INVALID_ARGUMENT: ")
    assert e.value.status == 1 and e.value.status_name == "FLAT_ERROR_INVALID_ARGUMENT"
    assert np.all(out == SENTINEL)


def test_shape_errors_from_c(rng):
    q = make(rng, (1, 3, 4, 8))
    k = make(rng, (1, 2, 5, 8))
    with pytest.raises(flat.InvalidArgumentError, match=r"q.heads \(3\) is not a multiple of "
                                                        r"k.heads \(2\)"):
        flat.attention(q, k, k)
    q = make(rng, (1, 4, 4, 8))
    with pytest.raises(flat.InvalidArgumentError, match=r"k.dim \(6\) != q.dim \(8\)"):
        flat.attention(q, k[..., :6], k)
    with pytest.raises(flat.InvalidArgumentError, match=r"v.seq \(4\) != k.seq \(5\)"):
        flat.attention(q, k, k[:, :, :4])
    with pytest.raises(flat.InvalidArgumentError, match=r"v.batch"):
        flat.attention(q, k, np.concatenate([k, k]))


def test_out_overlapping_an_input(qkv):
    q, k, v = qkv
    before = q.copy()
    with pytest.raises(flat.InvalidArgumentError, match="out overlaps q"):
        flat.attention(q, k, v, out=q)
    assert np.array_equal(q, before)


def test_unsupported_isa(qkv):
    """An ISA this CPU or build lacks is FLAT_ERROR_UNSUPPORTED (neon on x86, avx2 on arm)."""
    other = "avx2" if flat.isa() == "neon" else "neon"
    out = fresh_out()
    with pytest.raises(flat.UnsupportedError) as e:
        flat.attention(*qkv, isa=other, out=out)
    assert e.value.status == 2 and e.value.status_name == "FLAT_ERROR_UNSUPPORTED"
    assert e.value.message and other in e.value.message
    assert np.all(out == SENTINEL)


# name: (keywords, exception, words of the message)
PY_ERRORS = {
    "dropout": ({"dropout_p": 0.1}, NotImplementedError,
                "dropout_p=0.1 is not supported by flat 0.2"),
    "top-left causal": ({"causal": "top_left"}, NotImplementedError,
                        "causal='top_left' (the alignment of torch's is_causal) is not supported "
                        "by flat 0.2"),
    "boolean mask": ({"mask": np.ones((SQ, SK), bool)}, NotImplementedError,
                     "a boolean mask is not supported by flat 0.2"),
    "uint16 mask without dtype": ({"mask": np.zeros((SQ, SK), np.uint16)}, NotImplementedError,
                                  "a uint16 mask"),
    "float64 mask": ({"mask": np.zeros((SQ, SK))}, NotImplementedError, "a float64 mask"),
    "scale zero": ({"scale": 0.0}, ValueError, "scale (0.0) must be finite and non-zero"),
    "scale nan": ({"scale": np.nan}, ValueError, "must be finite and non-zero"),
    "unknown causal": ({"causal": "diagonal"}, ValueError, "causal='diagonal'"),
    "unknown isa": ({"isa": "sse2"}, ValueError, "isa='sse2': must be one of 'auto', 'scalar'"),
    "unknown dataflow": ({"dataflow": "tiled"}, ValueError, "dataflow='tiled'"),
    "unknown precision": ({"precision": "fp16"}, ValueError,
                          "precision='fp16': must be one of 'auto', 'fp32', 'bf16', 'int8'"),
    "unknown layout": ({"layout": "sbhd"}, ValueError, "layout='sbhd'"),
    "window not a pair": ({"window": 4}, TypeError, "window must be a pair"),
    "window float": ({"window": (4.0, 0)}, TypeError, "window[0] (left) must be an int"),
    "window overflow": ({"window": (2**31, 0)}, ValueError, "outside the int32 range"),
    "threads overflow": ({"num_threads": 2**40}, ValueError, "num_threads"),
    "kv_lens floats": ({"kv_lens": [1.0, 2.0]}, TypeError, "kv_lens must hold integers"),
    "kv_lens length": ({"kv_lens": [1, 2, 3]}, ValueError, r"kv_lens must have shape (2,)"),
    "kv_lens overflow": ({"kv_lens": [2**33, 1]}, ValueError, "outside the int32 range"),
    "sinks length": ({"sinks": [1.0, 2.0]}, ValueError, "sinks must have shape (4,)"),
    "slopes length": ({"alibi_slopes": np.zeros(5)}, ValueError, "alibi_slopes must have shape"),
    "mask not an array": ({"mask": [[0.0]]}, TypeError, "mask must be a numpy.ndarray"),
    "unknown keyword": ({"is_causal": True}, TypeError, "is_causal"),
}


@pytest.mark.parametrize("case", list(PY_ERRORS))
def test_python_errors(qkv, case):
    kw, exc, words = PY_ERRORS[case]
    out = fresh_out()
    with pytest.raises(exc) as e:
        flat.attention(*qkv, out=out, **kw)
    assert words in str(e.value)
    assert not isinstance(e.value, flat.FlatError)
    assert np.all(out == SENTINEL)


def test_hierarchy():
    assert issubclass(flat.InvalidArgumentError, flat.FlatError)
    assert issubclass(flat.InvalidArgumentError, ValueError)
    assert issubclass(flat.UnsupportedError, flat.FlatError)
    assert issubclass(flat.OutOfMemoryError, flat.FlatError)
    assert issubclass(flat.OutOfMemoryError, MemoryError)
    assert issubclass(flat.LibraryNotFoundError, OSError)
    oom = errors.error_for(3, "workspace of 1 TiB", "flat_plan_execute")
    assert isinstance(oom, flat.OutOfMemoryError) and oom.status == 3
    assert str(oom) == "flat_plan_execute: FLAT_ERROR_OUT_OF_MEMORY: workspace of 1 TiB"
    odd = errors.error_for(9, "?")
    assert type(odd) is flat.FlatError and odd.status == 9 and "flat_status 9" in str(odd)


def test_messages_are_per_thread(rng):
    """flat_last_error is per thread: two threads failing differently at once
    each get their own message."""
    q, k = make(rng, (1, 2, 3, 8)), make(rng, (1, 2, 5, 8))
    bad = {"a": ({"kv_lens": [6]}, "opt.kv_lens[0] (6)"),
           "b": ({"window": (0, -3)}, "opt.window_right (-3)")}
    wrong = []
    barrier = threading.Barrier(2)

    def worker(name):
        kw, words = bad[name]
        barrier.wait()
        for _ in range(300):
            try:
                flat.attention(q, k, k, **kw)
                wrong.append((name, "no error"))
            except flat.InvalidArgumentError as e:
                if words not in e.message:
                    wrong.append((name, e.message))

    threads = [threading.Thread(target=worker, args=(n,)) for n in bad]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]
