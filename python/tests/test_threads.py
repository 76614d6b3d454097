"""The GIL is released while flat computes, calls run in parallel threads,
and arrays the caller lets go of during a call stay alive until it returns.

No timing ratio is asserted (the test machine is small and shared): the
proof of release is that the main thread keeps running Python code in the
middle of a call made on another thread, which cannot happen while that
thread holds the GIL inside the foreign call."""
import gc
import threading
import time

import numpy as np

import flat
from support import make

SLOW = dict(isa="scalar", num_threads=1)  # one core, portable kernels: a long call


def long_inputs(rng, min_seconds=0.25):
    """Inputs for which one SLOW call takes at least min_seconds here."""
    heads = 2
    while True:
        q = make(rng, (1, heads, 1024, 64))
        k, v = make(rng, (1, heads, 1024, 64)), make(rng, (1, heads, 1024, 64))
        t0 = time.perf_counter()
        out = flat.attention(q, k, v, **SLOW)
        if time.perf_counter() - t0 >= min_seconds or heads >= 64:
            return q, k, v, out
        heads *= 2


def test_main_thread_runs_during_a_call(rng):
    q, k, v, want = long_inputs(rng)
    span, result = {}, {}

    def work():
        span["start"] = time.perf_counter()
        result["out"] = flat.attention(q, k, v, **SLOW)
        span["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    stamps = []
    t.start()
    while t.is_alive():
        n = 0
        for _ in range(200):
            n += 1
        stamps.append(time.perf_counter())
    t.join()
    start, end = span["start"], span["end"]
    quarter = (end - start) / 4
    middle = [s for s in stamps if start + quarter < s < end - quarter]
    assert len(middle) >= 20, (f"the main thread ran {len(middle)} times in the middle half of "
                               f"a {end - start:.2f} s call: the GIL was held")
    assert np.array_equal(result["out"], want)


def test_two_calls_in_parallel_threads(rng):
    a = long_inputs(rng, 0.15)
    b = [make(rng, x.shape) for x in a[:3]]
    b.append(flat.attention(*b, causal=True, **SLOW))
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def work(name, q, k, v, causal):
        try:
            barrier.wait()
            results[name] = flat.attention(q, k, v, causal=causal, **SLOW)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=("a", *a[:3], False)),
               threading.Thread(target=work, args=("b", *b[:3], True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert np.array_equal(results["a"], a[3]) and np.array_equal(results["b"], b[3])


def test_arrays_released_while_a_call_runs(rng):
    """The caller drops its only references (views of padded buffers, the
    mask, list options) while the call runs on another thread; the main
    thread then churns the allocator with NaN-filled arrays of the same
    sizes. The result must be exactly that of an undisturbed call."""
    q, k, v, _ = long_inputs(rng, 0.15)
    shape_q, shape_k = q.shape, k.shape
    bufs = [np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 3))) for x in (q, k, v)]
    sq, sk = q.shape[2], k.shape[2]
    mask = rng.uniform(-1, 0, (sq, sk)).astype(np.float32)
    opts = dict(kv_lens=[sk - 5], sinks=[0.5] * q.shape[1], causal=True, return_lse=True, **SLOW)
    want = flat.attention(*(b[..., :64] for b in bufs), mask=mask, **opts)
    box = {"q": bufs[0][..., :64], "k": bufs[1][..., :64], "v": bufs[2][..., :64], "mask": mask}
    del q, k, v, bufs, mask
    result, started = {}, threading.Event()

    def work():
        started.set()
        result["out"] = flat.attention(box.pop("q"), box.pop("k"), box.pop("v"),
                                       mask=box.pop("mask"), **opts)

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    while box:
        time.sleep(0)
    gc.collect()
    churned = 0
    while t.is_alive():
        junk = [np.full(shape_q[:3] + (67,), np.nan, np.float32),
                np.full(shape_k[:3] + (67,), np.nan, np.float32),
                np.full((sq, sk), np.nan, np.float32)]
        del junk
        churned += 1
    t.join()
    assert churned > 0
    assert np.array_equal(result["out"][0], want[0]) and np.array_equal(result["out"][1], want[1])
