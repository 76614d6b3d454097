# PyTorch SDPA on the shared shapes, bf16 and fp32, median of reps, GFLOP/s
# with flat's FLOP convention (benchmarks/shapes.csv header).
import sys, time, torch
import torch.nn.functional as F
threads = int(sys.argv[1]); names = sys.argv[2].split(",") if len(sys.argv) > 2 else None
torch.set_num_threads(threads)
shapes = []
for line in open(sys.argv[3] if len(sys.argv) > 3 else "src/benchmarks/shapes.csv"):
    if line.startswith("#") or not line.strip(): continue
    n, b, hq, hkv, nq, nk, d, c = line.strip().split(",")
    shapes.append((n, int(b), int(hq), int(hkv), int(nq), int(nk), int(d), int(c)))
def pairs(nq, nk, causal):
    if not causal: return nq * nk
    if nq == nk: return nq * nk / 2
    return sum(max(0, min(nk, nk - nq + 1 + i)) for i in range(nq))
print(f"torch {torch.__version__} threads {torch.get_num_threads()} mkldnn {torch.backends.mkldnn.is_available()}")
for (n, b, hq, hkv, nq, nk, d, c) in shapes:
    if names and n not in names: continue
    flops = 4 * b * hq * d * pairs(nq, nk, c)
    for dt in (torch.bfloat16, torch.float32):
        g = torch.Generator().manual_seed(1)
        q = (torch.rand(b, hq, nq, d, generator=g) * 2 - 1).to(dt)
        k = (torch.rand(b, hkv, nk, d, generator=g) * 2 - 1).to(dt)
        v = (torch.rand(b, hkv, nk, d, generator=g) * 2 - 1).to(dt)
        # causal with nq < nk: bottom-right alignment as flat (an explicit mask)
        kw = {}
        if c and nq != nk:
            i = torch.arange(nq)[:, None]; j = torch.arange(nk)[None, :]
            kw["attn_mask"] = j <= i + (nk - nq)
        elif c:
            kw["is_causal"] = True
        with torch.no_grad():
            f = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=hq != hkv, **kw)
            f()
            ts = []
            for _ in range(3):
                t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
        ts.sort(); t = ts[1]
        print(f"torch {n:16s} {str(dt):15s} threads={threads:2d} {1e3*t:9.3f} ms {flops/t*1e-9:8.1f} GFLOP/s", flush=True)
