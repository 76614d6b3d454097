"""flat: fused attention kernels for CPUs, from numpy (ctypes over libflat).

    import numpy as np, flat
    out = flat.attention(q, k, v, causal=True)            # q, k, v: [B, H, S, D] float32

See flat.attention, flat.attention_paged and flat.plan; the README's
"Python" section has the options next to PyTorch's and flash_attn's.
"""
from ._arrays import from_bfloat16, to_bfloat16
from ._lib import library_path
from ._plan import Plan, plan, plan_paged
from ._quant import KVQuant, dequantize, quantize
from .api import attention, attention_paged, isa, version
from .errors import (FlatError, InvalidArgumentError, LibraryNotFoundError, OutOfMemoryError,
                     UnsupportedError)

__version__ = "0.2.0"
__all__ = ["attention", "attention_paged", "plan", "plan_paged", "Plan", "version", "isa",
           "library_path", "to_bfloat16", "from_bfloat16", "quantize", "dequantize", "KVQuant", "FlatError", "InvalidArgumentError",
           "UnsupportedError", "OutOfMemoryError", "LibraryNotFoundError"]
