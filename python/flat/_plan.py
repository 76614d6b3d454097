"""flat.plan / flat.plan_paged: a call validated and scheduled once (flat_plan)."""
import ctypes
import threading

from . import _lib
from .api import _prepare_dense, _prepare_paged


class Plan:
    """One call of flat, bound to its arrays (pointers; their data may change
    between executions) and options. ``describe()`` gives the planner's choice
    and its reason; ``execute()`` runs it into the bound ``out`` (and ``lse``)
    and returns them as the call would. Any number of threads may execute a
    plan at once (each execution has its own workspace; they write the same
    out). ``close()`` (or leaving a ``with`` block) frees it; it must not run
    while an execution is in flight."""

    def __init__(self, call, create, function):
        self._call = call  # keeps every bound array alive while the plan lives
        self._lock = threading.Lock()
        self._running = 0
        self._function = function
        handle = ctypes.c_void_p()
        _lib.check(create(ctypes.byref(handle)), function)
        self._handle = handle

    @property
    def out(self):
        return self._call.out

    @property
    def lse(self):
        return self._call.lse

    def _h(self):
        if self._handle is None:
            raise ValueError("the plan is closed")
        return self._handle

    def describe(self):
        """The planner's choice and its reason (flat_plan_describe)."""
        with self._lock:
            return _lib.lib().flat_plan_describe(self._h()).decode()

    @property
    def workspace_size(self):
        """Bytes of workspace one execution needs (flat_plan_workspace_size)."""
        with self._lock:
            return _lib.lib().flat_plan_workspace_size(self._h())

    @property
    def workers(self):
        """Workers the plan is sized for (flat_plan_workers)."""
        with self._lock:
            return _lib.lib().flat_plan_workers(self._h())

    def tasks(self, phase):
        """Tasks of phase 0 (attention) or 1 (split-KV merge) (flat_plan_tasks)."""
        with self._lock:
            return _lib.lib().flat_plan_tasks(self._h(), int(phase))

    def execute(self):
        """Run the plan (flat_plan_execute, workspace allocated for the call; GIL released)."""
        with self._lock:
            handle = self._h()
            self._running += 1
        try:
            _lib.check(_lib.lib().flat_plan_execute(handle, None), "flat_plan_execute")
        finally:
            with self._lock:
                self._running -= 1
        return self._call.result()

    def close(self):
        """Free the plan (flat_plan_destroy); later uses raise ValueError."""
        with self._lock:
            if self._running:
                raise RuntimeError("Plan.close() while an execution is running")
            handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _lib.lib().flat_plan_destroy(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if self._handle is None else self.describe()
        return f"<flat.Plan {state}>"


def plan(q, k, v, **options):
    """A Plan of flat.attention(q, k, v, **options) (flat_plan_create).

    Takes the same keywords as flat.attention; num_threads is the number of
    workers the plan is sized for. The plan keeps q, k, v, out, mask and the
    option arrays alive and reads them at every execution."""
    c = _prepare_dense(q, k, v, **options)
    lib = _lib.lib()
    return Plan(c, lambda h: lib.flat_plan_create(c.q, c.k, c.v, c.out_t, c.opts, h),
                "flat_plan_create")


def plan_paged(q, k_pages, v_pages, block_table, seq_lens, **options):
    """A Plan of flat.attention_paged(...) (flat_plan_create_paged), same keywords."""
    c = _prepare_paged(q, k_pages, v_pages, block_table, seq_lens, **options)
    lib = _lib.lib()
    return Plan(c, lambda h: lib.flat_plan_create_paged(c.q, c.kv, c.out_t, c.opts, h),
                "flat_plan_create_paged")
