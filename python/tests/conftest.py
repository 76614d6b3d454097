"""pytest set-up: the package from this source tree, a per-test random generator.

The suite loads libflat the way users do: FLAT_LIBRARY (tests/run.sh points
it at build/tests/libflat.so.0), a library next to the package, or the
loader's search path; a library that cannot be loaded fails every test.
FLAT_TEST_INSTALLED=1 tests the installed package instead of python/flat.
Helpers live in support.py, the float64 reference in reference.py.
"""
import os
import sys

import numpy as np
import pytest

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("FLAT_TEST_INSTALLED") != "1":
    sys.path.insert(0, PACKAGE_ROOT)


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name: reproducible, distinct per test."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.nodeid)) % 2**32
    return np.random.default_rng(seed)
