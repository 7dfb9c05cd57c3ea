"""Errors a stage reports to its user without a traceback, and :class:`Rejected`: one item
that cannot be used, recorded with its reason rather than raised to the user."""


class NewsimgError(Exception):
    """An expected failure with a message for the user; stages exit non-zero with it."""

    exit_code = 1


class ParamsError(NewsimgError, ValueError):
    """params.yaml holds an unknown key, a wrong type or an impossible value. Exit code 2."""

    exit_code = 2


class InputError(NewsimgError):
    """A stage's input is missing or unreadable; found before any work. Exit code 2."""

    exit_code = 2


class TooManyFailuresError(NewsimgError):
    """More items failed than the params allow; what succeeded has been written. Exit code 1."""


class WorkerDiedError(NewsimgError):
    """A worker process died mid-task (a crash in native code, the OOM killer); what it and the
    others committed before is kept, so running again resumes. Exit code 1."""


class Rejected(Exception):
    """An image that cannot be stored; ``reason`` is the short code recorded in the failures."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
