"""Exceptions: one FlatError subclass per flat_status, carrying flat_last_error()."""
from . import _types


class FlatError(Exception):
    """A flat_* call returned a status other than FLAT_OK.

    ``status`` is the flat_status value, ``status_name`` its C name and
    ``message`` the calling thread's flat_last_error() text, read right
    after the failing call.
    """

    status = None
    status_name = "FLAT_ERROR"

    def __init__(self, message, function=None, status=None):
        if status is not None and status != self.status:  # a status this module does not know
            self.status, self.status_name = status, f"flat_status {status}"
        self.message = message
        self.function = function
        where = f"{function}: " if function else ""
        super().__init__(f"{where}{self.status_name}: {message}")


class InvalidArgumentError(FlatError, ValueError):
    """FLAT_ERROR_INVALID_ARGUMENT: the arguments break a rule of flat.h."""

    status = _types.INVALID_ARGUMENT
    status_name = "FLAT_ERROR_INVALID_ARGUMENT"


class UnsupportedError(FlatError):
    """FLAT_ERROR_UNSUPPORTED: valid, but this build or CPU cannot run it."""

    status = _types.UNSUPPORTED
    status_name = "FLAT_ERROR_UNSUPPORTED"


class OutOfMemoryError(FlatError, MemoryError):
    """FLAT_ERROR_OUT_OF_MEMORY: the workspace or plan could not be allocated."""

    status = _types.OUT_OF_MEMORY
    status_name = "FLAT_ERROR_OUT_OF_MEMORY"


class LibraryNotFoundError(OSError):
    """libflat could not be loaded; the message lists every place tried."""


_BY_STATUS = {c.status: c for c in (InvalidArgumentError, UnsupportedError, OutOfMemoryError)}


def error_for(status, message, function=None):
    """The exception for a non-OK status (a plain FlatError for unknown values)."""
    cls = _BY_STATUS.get(status)
    return cls(message, function) if cls else FlatError(message, function, status)


def not_in_release(what, hint=""):
    """NotImplementedError for a keyword value flat's C library cannot do."""
    return NotImplementedError(f"{what} is not supported by flat 0.2{': ' + hint if hint else ''}")
