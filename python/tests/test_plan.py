"""flat.plan / flat.plan_paged: the planner's choice, execution equal to the
call, the data under bound arrays read at each execution, life cycle."""
import gc

import numpy as np
import pytest

import flat
from support import ISAS, make
from test_paged import build_pools


@pytest.fixture
def qkv(rng):
    return make(rng, (2, 4, 40, 32)), make(rng, (2, 2, 64, 32)), make(rng, (2, 2, 64, 32))


@pytest.mark.parametrize("dataflow", ["flat", "flash", "decode"])
@pytest.mark.parametrize("isa", ISAS)
def test_describe_names_the_choice(qkv, isa, dataflow):
    with flat.plan(*qkv, isa=isa, dataflow=dataflow, num_threads=2) as p:
        text = p.describe()
        assert f"isa={isa} " in text and f"dataflow={dataflow.upper()} " in text, text
        assert "because" in text
        assert p.workers == 2 and p.tasks(0) >= 1 and p.tasks(1) >= 0 and p.tasks(2) == -1
        assert p.workspace_size > 0
        assert "<flat.Plan isa=" in repr(p)


def test_auto_explains_itself(qkv):
    q, k, v = qkv
    with flat.plan(q[:, :, :1], k, v) as p:
        assert "dataflow=DECODE" in p.describe() and "decode path" in p.describe()


def test_execute_equals_the_call_and_rereads_data(qkv, rng):
    q, k, v = qkv
    kw = dict(causal=True, kv_lens=[64, 30], window=(20, 0), sinks=[0.1, 0.2, 0.3, 0.4],
              return_lse=True, num_threads=2)
    p = flat.plan(q, k, v, **kw)
    out, lse = p.execute()
    want = flat.attention(q, k, v, **kw)
    assert out is p.out and lse is p.lse
    assert np.array_equal(out, want[0]) and np.array_equal(lse, want[1])
    q[...] = make(rng, q.shape)  # bound pointers: new data, same plan
    out2, _ = p.execute()
    assert np.array_equal(out2, flat.attention(q, k, v, **kw)[0])
    p.close()
    p.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        p.execute()
    with pytest.raises(ValueError, match="closed"):
        p.describe()
    assert repr(p) == "<flat.Plan closed>"


def test_plan_keeps_its_arrays(rng):
    """Temporaries bound to a plan (copies, list options, a broadcast mask)
    live as long as the plan."""
    q, k, v = make(rng, (1, 2, 8, 16)), make(rng, (1, 2, 12, 16)), make(rng, (1, 2, 12, 16))
    mask = rng.uniform(-1, 0, (8, 12)).astype(np.float32)
    want = flat.attention(q, k, v, mask=mask, kv_lens=[10], alibi_slopes=[0.5, 0.25])
    p = flat.plan(q.copy(), k.copy(), v.copy(), mask=mask.copy(), kv_lens=[10],
                  alibi_slopes=[0.5, 0.25])
    gc.collect()
    junk = [np.full(x.shape, np.nan, np.float32) for x in (q, k, v, mask) for _ in range(4)]
    assert np.array_equal(p.execute(), want)
    del junk


def test_plan_errors(qkv):
    q, k, v = qkv
    out = np.full(q.shape, 4.0, np.float32)
    with pytest.raises(flat.InvalidArgumentError) as e:
        flat.plan(q, k, v, kv_lens=[65, 1], out=out)
    assert str(e.value).startswith("flat_plan_create: FLAT_ERROR_INVALID_ARGUMENT: opt.kv_lens[0]")
    assert np.all(out == 4.0)
    with pytest.raises(TypeError, match="is_causal"):
        flat.plan(q, k, v, is_causal=True)


def test_plan_paged(rng):
    seqs = [70, 3]
    k, v = make(rng, (2, 2, 70, 16)), make(rng, (2, 2, 70, 16))
    q = make(rng, (2, 4, 1, 16))
    kp, vp, table = build_pools(rng, k, v, seqs, 16, "nhd")
    with flat.plan_paged(q, kp, vp, table, seqs, layout="bhsd", num_threads=1) as p:
        assert "dataflow=DECODE" in p.describe()
        got = p.execute()
    assert np.array_equal(got, flat.attention_paged(q, kp, vp, table, seqs, layout="bhsd",
                                                    num_threads=1))
    assert np.array_equal(got, flat.attention(q, k, v, kv_lens=seqs, num_threads=1))
