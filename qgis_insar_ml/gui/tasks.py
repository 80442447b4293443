"""Background work in the QGIS task manager: Processing algorithms and the torch installer."""
from __future__ import annotations

import subprocess
from typing import Callable

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsTask,
)

from ..core.errors import InsarMlError

# on_done(ok, results, error message); results are the algorithm's outputs
Done = Callable[[bool, dict, str], None]


class MessageFeedback(QgsProcessingFeedback):
    """Keeps the algorithm's error messages: the dialog shows them instead of a traceback."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.errors.append(error)
        super().reportError(error, fatalError)


class AlgorithmRun:
    """One Processing algorithm running as a QgsTask: progress bar and cancel in the task manager."""

    def __init__(self, algorithm_id: str, parameters: dict, on_done: Done,
                 on_progress: Callable[[float], None] | None = None):
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if algorithm is None:
            raise InsarMlError(f"The Processing algorithm {algorithm_id} is not available: enable the InSAR ML "
                               "plugin's provider in Processing ▸ Options.")
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = MessageFeedback()
        self.algorithm = algorithm  # the task uses it from its thread: keep the Python object alive
        self.task = QgsProcessingAlgRunnerTask(algorithm, parameters, self.context, self.feedback)
        self.task.setDescription(algorithm.displayName())
        self.task.executed.connect(self._executed)
        if on_progress is not None:
            self.task.progressChanged.connect(on_progress)
        self._on_done = on_done
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        self.feedback.cancel()
        self.task.cancel()

    def _executed(self, ok: bool, results: dict) -> None:
        message = "" if ok else "\n".join(self.feedback.errors) or (
            "Cancelled." if self.feedback.isCanceled() else "The algorithm failed.")
        self._on_done(ok, results or {}, message)


class CommandTask(QgsTask):
    """Runs a shell command (the pip install) in the background and keeps its output."""

    def __init__(self, description: str, command: str, on_done: Callable[[bool, str], None]):
        super().__init__(description, QgsTask.CanCancel)
        self.command, self.output, self._on_done = command, "", on_done

    def run(self) -> bool:
        try:
            done = subprocess.run(self.command, shell=True, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.output = str(exc)
            return False
        self.output = done.stdout + done.stderr
        return done.returncode == 0

    def finished(self, result: bool) -> None:
        self._on_done(result, self.output)
