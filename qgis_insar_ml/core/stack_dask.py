"""The pairs of a stack as Dask distributed tasks: one task per pair, on a local or remote cluster.

Imported only when a run asks for workers or a scheduler, so Dask stays optional. Workers
read the inputs and write the outputs themselves, through a filesystem they share with the
client. Each pair's progress and log lines come back as worker events on a topic of the
run; a cancel is a distributed Event that every running pair polls, so it stops within
about a second and removes its partial files, while the pairs not yet started are dropped.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
import uuid
from collections import deque
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import Cancelled, InsarMlError
from .progress import Progress
from .stack import (
    DASK_REQUIREMENT,
    PairResult,
    StackFilter,
    StackJob,
    StackMonitor,
    describe_error,
    filter_pair,
    python_install_command,
)

if TYPE_CHECKING:
    from distributed import Client

# Workers ask the scheduler whether the run was cancelled at most this often (one round trip each) ...
CANCEL_POLL_S = 0.25
# ... and send a pair's progress at most this often.
PROGRESS_EVERY_S = 0.5
# How often the client looks at finished pairs, worker events and the user's cancel.
CLIENT_POLL_S = 0.1
# After a cancel, how long running pairs get to remove their partial files before a local cluster closes.
CANCEL_GRACE_S = 30.0


def run_on_dask(jobs: Sequence[StackJob], stack_filter: StackFilter, scheduler: str | None, workers: int,
                gpus: int, monitor: StackMonitor, progress: Progress) -> list[PairResult]:
    """Every job as a task on the cluster at ``scheduler``, or on a local cluster of ``workers`` processes.

    On a local cluster with GPUs (``gpus`` > 0), worker N uses GPU N modulo ``gpus``.
    """
    distributed = import_distributed()
    with dask_client(distributed, scheduler, workers) as client:
        run = uuid.uuid4().hex
        events = _WorkerEvents()
        client.subscribe_topic(_topic(run), events.receive)
        cancel = distributed.Event(_cancel_name(run), client=client)
        futures = {client.submit(_pair_task, job, stack_filter, run, gpus if not scheduler else 0,
                                 key=f"insarml-pair-{run}-{index}", pure=False): job
                   for index, job in enumerate(jobs)}
        monitor.log(f"{len(jobs)} pairs on {len(client.scheduler_info().get('workers', {}))} Dask workers "
                    f"({scheduler or 'local cluster'})")
        results: dict[str, PairResult] = {}
        waiting = dict(futures)
        while waiting:
            events.replay(monitor)
            for future in [f for f in waiting if f.done()]:
                job = waiting.pop(future)
                results[job.label] = _result(future, job)
                monitor.finished(results[job.label])
            if progress.is_cancelled():
                cancel.set()
                client.cancel([f for f, job in waiting.items() if job.label not in events.started])
                events.wait_until_idle(CANCEL_GRACE_S)
                raise monitor.cancelled()
            time.sleep(CLIENT_POLL_S)
        events.replay(monitor)
    return [results[job.label] for job in jobs]


def _result(future, job: StackJob) -> PairResult:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a worker that died, a task that could not start on it
        return PairResult(job.label, "failed", str(job.outputs.phase), str(job.outputs.coherence),
                          error=describe_error(exc))


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise InsarMlError("Parallel and cluster runs need Dask distributed, which this Python cannot import. "
                           f"Install it with:\n    {python_install_command(DASK_REQUIREMENT)}\nor run in this "
                           "process (workers 0).") from None
    return distributed


@contextmanager
def dask_client(distributed, scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a local cluster of single-threaded worker processes."""
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InsarMlError(f"Cannot reach the Dask scheduler {scheduler} ({exc}). Check the address, "
                               "or leave the scheduler empty for a local cluster.") from None
        with client:
            yield client
        return
    _spawn_workers_with_python()
    import dask

    # Dask's default MALLOC_TRIM_THRESHOLD_ also stops glibc from raising its mmap threshold, so every
    # large array is a fresh mmap (2048² Boxcar pairs 2.5x slower, mostly system time). And what it sets for
    # the workers stay in this process (QGIS) unless restored.
    saved = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.ERROR)
    except RuntimeError as exc:
        raise InsarMlError(
            f"Could not start {workers} local Dask worker processes ({exc}). In a Python script, call the stack "
            "filter under `if __name__ == \"__main__\":` (workers start a new Python that imports the script), "
            "or run in this process (workers 0).") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with cluster, distributed.Client(cluster) as client:
        yield client


def _spawn_workers_with_python() -> None:
    """Worker processes start this interpreter, not ``sys.executable``.

    Inside QGIS that is the QGIS binary or whatever ``python3`` comes first on PATH (another
    Python, without the plugin's packages); the interpreter beside ``sys.prefix`` is QGIS's own.
    """
    from ..dependencies import python_executable

    interpreter = python_executable()
    if interpreter != sys.executable:
        multiprocessing.set_executable(interpreter)


def _topic(run: str) -> str:
    return f"insarml-stack-{run}"


def _cancel_name(run: str) -> str:
    return f"insarml-cancel-{run}"


class _WorkerEvents:
    """The workers' messages, received on the client's event loop and replayed on the caller's thread."""

    def __init__(self):
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self._queue: deque[dict] = deque()

    def receive(self, event: tuple[float, dict]) -> None:
        message = event[1]
        if message.get("state") == "started":
            self.started.add(message["pair"])
        elif message.get("state") == "ended":
            self.ended.add(message["pair"])
        self._queue.append(message)

    def replay(self, monitor: StackMonitor) -> None:
        while self._queue:
            message = self._queue.popleft()
            if "percent" in message:
                monitor.update(message["pair"], message["percent"])
            elif "info" in message:
                monitor.log(message["info"])

    def wait_until_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.started - self.ended and time.monotonic() < deadline:
            time.sleep(CLIENT_POLL_S / 2)


class _WorkerProgress:
    """A pair's Progress on a Dask worker: messages go to the client, the cancel comes from the scheduler."""

    def __init__(self, worker, run: str, label: str):
        from distributed import Event

        self.worker, self.topic, self.label = worker, _topic(run), label
        self.cancel = Event(_cancel_name(run))
        self._cancelled = False
        self._next_poll = self._next_report = 0.0

    def send(self, **message) -> None:
        self.worker.log_event(self.topic, {"pair": self.label, **message})

    def set_progress(self, percent: float) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + PROGRESS_EVERY_S
            self.send(percent=percent)

    def is_cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now >= self._next_poll:
            self._next_poll = now + CANCEL_POLL_S
            self._cancelled = self.cancel.is_set()
        return self._cancelled

    def info(self, message: str) -> None:
        self.send(info=f"{self.label}: {message}")


def _pair_task(job: StackJob, stack_filter: StackFilter, run: str, gpus: int) -> PairResult:
    """The Dask task of one pair (runs on a worker)."""
    from distributed import get_worker

    worker = get_worker()
    progress = _WorkerProgress(worker, run, job.label)
    progress.send(state="started")
    try:
        if progress.is_cancelled():
            raise Cancelled("Cancelled by the user.")
        # a local GPU cluster's workers are named 0..N-1: one GPU each
        device = f"cuda:{int(worker.name) % gpus}" if gpus else None
        return filter_pair(job, stack_filter, progress, progress.info, device)
    finally:
        progress.send(state="ended")
