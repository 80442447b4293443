"""The progress/cancel protocol shared by the core and the QGIS layer.

The core never sees a ``QgsProcessingFeedback``; it sees anything with this shape, so
the same loops report to Processing, to a QgsTask, to a CLI or to nothing.
"""
from __future__ import annotations

from typing import Protocol

from .errors import Cancelled


class Progress(Protocol):
    def set_progress(self, percent: float) -> None: ...

    def is_cancelled(self) -> bool: ...

    def info(self, message: str) -> None: ...


class SilentProgress:
    """Reports nowhere and never cancels: the default for library calls."""

    def set_progress(self, percent: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        pass


def check_cancel(progress: Progress) -> None:
    """Raise :class:`Cancelled` when the user asked to stop."""
    if progress.is_cancelled():
        raise Cancelled("Cancelled by the user.")


class SubProgress:
    """A slice [start, start + span] % of a parent's progress: one stage of a longer job."""

    def __init__(self, parent: Progress, start: float, span: float):
        self.parent, self.start, self.span = parent, start, span

    def set_progress(self, percent: float) -> None:
        self.parent.set_progress(self.start + self.span * percent / 100.0)

    def is_cancelled(self) -> bool:
        return self.parent.is_cancelled()

    def info(self, message: str) -> None:
        self.parent.info(message)
