"""Filter every pair of a stack, resumably, in this process or on Dask distributed workers.

One pair is one task: :func:`filter_pair` runs the same core filter as the single-pair
algorithms (Boxcar, Goldstein, DeepInSAR) and writes ``<stem>.tif`` (filtered phase) and
``<stem>.coherence.tif``, ``<stem>`` being the pair's ``output_stem``. Tasks run one after
another in this process, or on Dask workers that read and write through a shared
filesystem: a local cluster (one single-threaded process per core, or one per GPU) or an
existing scheduler. Dask is imported only for those runs, so the plugin works without it.

Resuming: an output appears under its name only when complete (written under a temporary
name, then renamed) and records the filter that made it; a pair whose two outputs record the
requested filter is skipped, any other is filtered again. A pair that fails does not stop the
others: the JSON report beside the outputs lists it with its error. A MintPy stack's filtered
pairs are also assembled, at the end, into one HDF5 stack laid out like the input.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from osgeo import gdal

from .classical import filter_boxcar_raster, filter_goldstein_raster
from .errors import Cancelled, InsarMlError
from .filters import DEFAULT_COHERENCE_WINDOW, boxcar, goldstein
from .inputs import InterferogramSource
from .progress import Progress, SilentProgress
from .raster_io import remove_stale_partials

if TYPE_CHECKING:
    from .products import ProductPair

METHODS = ("deepinsar", "boxcar", "goldstein")
GOLDSTEIN_COHERENCE_WINDOW = 5
PHASE_SUFFIX = ".tif"
COHERENCE_SUFFIX = ".coherence.tif"
REPORT_NAME = "insarml_filter_report.json"
DASK_REQUIREMENT = "dask[distributed]==2026.8.0"
H5PY_REQUIREMENT = "h5py==3.16.0"


@dataclass(frozen=True)
class StackFilter:
    """The filter every pair gets, with its settings (picklable: it travels to the workers).

    ``window`` is the Boxcar window; ``coherence_window`` the Goldstein boxcar coherence window
    or the DeepInSAR compensated-coherence window (None: each filter's default); ``looks`` the
    pairs' number of looks, for DeepInSAR's coherence of phase-only pairs.
    """

    method: str = "deepinsar"
    window: int = 5
    alpha: float = 0.5
    patch_size: int = 32
    coherence_window: int | None = None
    model: str | None = None
    device: str = "auto"
    tile_size: int | None = None
    overlap: int | None = None
    looks: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InsarMlError(f"Unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")

    def recorded(self, has_amplitudes: bool) -> tuple[str, dict]:
        """The algorithm id and the settings that an output of this filter records (those that change pixels),
        for inputs with or without amplitudes."""
        tiling = {name: value for name, value in (("TILE_SIZE", self.tile_size), ("OVERLAP", self.overlap))
                  if value is not None}
        if self.method == "boxcar":
            return "insarml:filter_boxcar", {"WINDOW": self.window, **tiling}
        if self.method == "goldstein":
            return "insarml:filter_goldstein", {"ALPHA": self.alpha, "PATCH_SIZE": self.patch_size,
                                                "COHERENCE_WINDOW": self._coherence_window(), **tiling}
        return "insarml:deepinsar_filter", {"MODEL": str(self._model_path(has_amplitudes)),
                                            "COHERENCE_WINDOW": self._coherence_window(),
                                            "LOOKS": None if has_amplitudes else self.looks, **tiling}

    def run(self, source: InterferogramSource, outputs: PairOutputs, progress: Progress,
            log: Callable[[str], None], device: str | None = None) -> None:
        """Filter one pair into its two outputs through the single-pair core function."""
        phase, coherence = str(outputs.phase), str(outputs.coherence)
        if self.method == "boxcar":
            filter_boxcar_raster(source, self.window, phase, coherence, self.tile_size, self.overlap, progress)
        elif self.method == "goldstein":
            filter_goldstein_raster(source, self.alpha, self.patch_size, None, phase, coherence,
                                    self._coherence_window(), self.tile_size, self.overlap, progress)
        else:
            from .deepinsar.inference import filter_deepinsar_raster

            filter_deepinsar_raster(source, str(self._model_path(source.has_amplitudes)), device or self.device,
                                    self.tile_size, self.overlap, None, phase, coherence, None, progress, log,
                                    self._coherence_window(), self.looks)

    def check(self) -> None:
        """Refuse bad settings once, before any pair (rather than once per pair in the report)."""
        side = 2 * max(self.patch_size, self.window, self._coherence_window(), 8)
        block = np.ones((side, side), np.complex64)
        if self.method == "boxcar":
            boxcar(block, self.window)
        elif self.method == "goldstein":
            goldstein(block, self.alpha, self.patch_size)
            boxcar(block, self._coherence_window())
        else:
            from .deepinsar.inference import check_coherence_window
            from .deepinsar.looks_coherence import parse_look_count

            check_coherence_window(self._coherence_window())
            parse_look_count(self.looks)
            if self.model and not Path(self.model).is_file():
                raise InsarMlError(f"MODEL {self.model} does not exist. Choose a .safetensors model file, or leave "
                                   "it empty for the shipped model.")

    def _coherence_window(self) -> int:
        if self.coherence_window is not None:
            return self.coherence_window
        return GOLDSTEIN_COHERENCE_WINDOW if self.method == "goldstein" else DEFAULT_COHERENCE_WINDOW

    def _model_path(self, has_amplitudes: bool) -> Path:
        """The model file, absolute: outputs record it, and a rerun compares it."""
        if self.model:
            return Path(self.model).resolve()
        from .deepinsar.inference import shipped_model

        return shipped_model(has_amplitudes).resolve()


@dataclass(frozen=True)
class PairOutputs:
    phase: Path
    coherence: Path


@dataclass(frozen=True)
class StackJob:
    """One pair of a run: the name it is reported under (unique in the run), the pair, its outputs."""

    label: str
    pair: ProductPair
    outputs: PairOutputs


@dataclass(frozen=True)
class PairResult:
    """What became of one pair: ``filtered``, ``skipped`` (complete already) or ``failed``."""

    pair: str
    status: str
    phase: str
    coherence: str
    seconds: float = 0.0
    error: str | None = None


@dataclass
class StackResult:
    """Every pair's outcome in the order of the pairs, the report, and the HDF5 stacks written."""

    results: list[PairResult]
    report: Path
    seconds: float = 0.0
    stacks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def failures(self) -> list[PairResult]:
        return [result for result in self.results if result.status == "failed"]


def filter_pair(job: StackJob, stack_filter: StackFilter, progress: Progress | None = None,
                log: Callable[[str], None] = lambda message: None, device: str | None = None) -> PairResult:
    """Filter one pair unless its outputs are complete and record this filter.

    Any error becomes a ``failed`` result, so that one bad pair does not stop a stack;
    only a cancel propagates.
    """
    progress = progress or SilentProgress()
    start = time.perf_counter()

    def result(status: str, error: str | None = None) -> PairResult:
        return PairResult(job.label, status, str(job.outputs.phase), str(job.outputs.coherence),
                          round(time.perf_counter() - start, 3), error)

    try:
        made_by = _made_by(job.outputs, *stack_filter.recorded(job.pair.has_amplitudes))
        if made_by is True:  # complete: its inputs are not even opened
            return result("skipped")
        if made_by:
            log(f"{job.label}: {made_by}; filtering it again.")
        job.outputs.phase.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(job.outputs)
        stack_filter.run(job.pair.source(), job.outputs, progress, log, device)
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one pair is reported, and the stack goes on
        return result("failed", describe_error(exc))
    return result("filtered")


def describe_error(exc: BaseException) -> str:
    """A pair's error for the report: our messages as they are, anything else with its type."""
    if isinstance(exc, InsarMlError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


def _made_by(outputs: PairOutputs, algorithm: str, expected: dict) -> bool | str:
    """True when both outputs exist and record ``algorithm`` with ``expected``; else why not ("" when absent)."""
    for path in (outputs.phase, outputs.coherence):
        if not path.is_file():
            return ""
        try:
            metadata = gdal.Open(str(path)).GetMetadata()
            recorded = json.loads(metadata.get("INSARML_PARAMETERS", "{}"))
        except (RuntimeError, ValueError):
            return f"{path.name} is not a readable output"
        if metadata.get("INSARML_ALGORITHM") != algorithm:
            return f"{path.name} was made by {metadata.get('INSARML_ALGORITHM') or 'another program'}"
        changed = sorted(name for name, value in expected.items() if recorded.get(name) != value)
        if changed:
            return f"{path.name} was made with other settings ({', '.join(changed)})"
    return True


def _remove_leftovers(outputs: PairOutputs) -> None:
    """Hidden temporary files of these outputs, left by a run that was killed (a cancel removes its own)."""
    for path in (outputs.phase, outputs.coherence):
        remove_stale_partials(path)


def plan_jobs(pairs: Sequence[ProductPair], inputs: str | Sequence[str],
              output_folder: str | None = None) -> tuple[list[StackJob], Path]:
    """Each pair's outputs, and the folder of the report.

    Outputs go where the pair's ``output_stem`` says (beside its input), or under ``output_folder``
    with the same layout relative to the inputs' common folder.
    """
    paths = _input_paths(inputs)
    root = Path(os.path.commonpath([p if p.is_dir() else p.parent for p in paths]))
    base = Path(output_folder).resolve() if output_folder else root
    planned = []
    for pair in pairs:
        stem = Path(pair.output_stem)
        if output_folder:
            relative = Path(os.path.relpath(stem.parent, root))
            stem = base / (relative if ".." not in relative.parts else stem.parent.name) / stem.name
        planned.append((pair, PairOutputs(Path(f"{stem}{PHASE_SUFFIX}"), Path(f"{stem}{COHERENCE_SUFFIX}"))))
    names = Counter(pair.name for pair, _ in planned)
    jobs = [StackJob(pair.name if names[pair.name] == 1 else f"{pair.name} ({out.phase.name})", pair, out)
            for pair, out in planned]
    owners: dict[Path, str] = {}
    for job in jobs:
        if job.outputs.phase in owners:
            raise InsarMlError(f"The pairs {owners[job.outputs.phase]} and {job.label} would both write "
                               f"{job.outputs.phase}. Filter them in separate runs with different output folders.")
        owners[job.outputs.phase] = job.label
    return jobs, base


def _input_paths(inputs: str | Sequence[str]) -> list[Path]:
    return [Path(p).resolve() for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]


def filter_stack(inputs: str | Sequence[str], stack_filter: StackFilter, output_folder: str | None = None,
                 workers: int | None = None, scheduler: str | None = None, progress: Progress | None = None,
                 log: Callable[[str], None] | None = None,
                 on_pair: Callable[[str, float], None] | None = None) -> StackResult:
    """Filter every pair found in ``inputs`` (folder, files, or a stack) and write the report.

    ``workers``: None = a local Dask cluster of one worker per core (Boxcar, Goldstein) or per
    GPU (DeepInSAR; on the CPU it runs in this process), in this process when Dask is missing;
    0 or 1 = in this process; N = a local cluster of N.
    ``scheduler`` (``tcp://host:8786``) submits to an existing cluster instead.
    ``on_pair(name, percent)`` reports each pair's own progress; ``progress`` the whole stack's.
    """
    from .products import find_pairs

    progress = progress or SilentProgress()
    log = log or progress.info
    start = time.perf_counter()
    stack_filter.check()
    jobs, report_folder = plan_jobs(find_pairs(inputs), inputs, output_folder)
    report_folder.mkdir(parents=True, exist_ok=True)
    monitor = StackMonitor([job.label for job in jobs], progress, log, on_pair)
    count, gpus = (0, 0) if scheduler else _local_workers(workers, stack_filter, len(jobs), log)
    if scheduler or count > 1:
        from .stack_dask import run_on_dask

        results = run_on_dask(jobs, stack_filter, scheduler, count, gpus, monitor, progress)
    else:
        results = [_run_here(job, stack_filter, monitor, progress, log) for job in jobs]
    outcome = StackResult(results, report_folder / REPORT_NAME)
    assemble_mintpy_stacks(jobs, outcome, stack_filter, progress, log)
    outcome.seconds = round(time.perf_counter() - start, 2)
    write_report(outcome, inputs, stack_filter)
    return outcome


class StackMonitor:
    """Folds the pairs' progress into the stack's, and says when each pair ends."""

    def __init__(self, labels: list[str], progress: Progress, log: Callable[[str], None],
                 on_pair: Callable[[str, float], None] | None):
        self.fractions = dict.fromkeys(labels, 0.0)
        self.progress, self.log, self.on_pair = progress, log, on_pair
        self.done: set[str] = set()

    @property
    def ended(self) -> int:
        return len(self.done)

    def update(self, label: str, percent: float) -> None:
        if label in self.done:  # a worker's progress message that arrived after its result
            return
        self.fractions[label] = min(max(percent, 0.0), 100.0) / 100.0
        self.progress.set_progress(100.0 * sum(self.fractions.values()) / len(self.fractions))
        if self.on_pair is not None:
            self.on_pair(label, percent)

    def finished(self, result: PairResult) -> None:
        self.update(result.pair, 100.0)
        self.done.add(result.pair)
        what = {"filtered": f"filtered in {result.seconds:.1f} s", "skipped": "complete already, skipped",
                "failed": f"FAILED: {result.error}"}[result.status]
        self.log(f"[{self.ended}/{len(self.fractions)}] {result.pair}: {what}")

    def cancelled(self) -> Cancelled:
        return Cancelled(f"Cancelled by the user after {self.ended} of {len(self.fractions)} pairs. The complete "
                         "outputs are kept and no partial file is left; run again to continue with the rest.")


class _PairProgress:
    """One pair's Progress in this process: reports to the monitor, cancels with the stack."""

    def __init__(self, label: str, monitor: StackMonitor, stack: Progress):
        self.label, self.monitor, self.stack = label, monitor, stack

    def set_progress(self, percent: float) -> None:
        self.monitor.update(self.label, percent)

    def is_cancelled(self) -> bool:
        return self.stack.is_cancelled()

    def info(self, message: str) -> None:
        self.stack.info(message)


def _run_here(job: StackJob, stack_filter: StackFilter, monitor: StackMonitor, progress: Progress,
              log: Callable[[str], None]) -> PairResult:
    if progress.is_cancelled():
        raise monitor.cancelled()
    try:
        result = filter_pair(job, stack_filter, _PairProgress(job.label, monitor, progress), log)
    except Cancelled:
        raise monitor.cancelled() from None
    monitor.finished(result)
    return result


def _local_workers(workers: int | None, stack_filter: StackFilter, pairs: int,
                   log: Callable[[str], None]) -> tuple[int, int]:
    """(worker processes, GPUs to spread them over) of a local run.

    By default one per GPU for DeepInSAR on GPUs; DeepInSAR on the CPU runs in this process,
    whose runtime already uses every core; the classical filters one per core.
    """
    deepinsar = stack_filter.method == "deepinsar"
    from .deepinsar.cpu_runtime import cpu_without_torch  # decides "no GPU" without importing torch into QGIS

    gpus = (gpu_count() if deepinsar and stack_filter.device in ("auto", "cuda")
            and not cpu_without_torch(stack_filter.device) else 0)
    if workers is None:
        workers = gpus or (1 if deepinsar else os.cpu_count() or 1)
        if min(workers, pairs) > 1 and importlib.util.find_spec("distributed") is None:
            log(f"Dask is not installed: filtering one pair after another in this process. For {workers} "
                f"parallel workers install it with: {python_install_command(DASK_REQUIREMENT)}")
            return 1, 0
    return min(workers, pairs), gpus


def gpu_count() -> int:
    """CUDA GPUs this torch sees (0 without torch)."""
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# --------------------------------------------------------------------------- MintPy: the filtered stack as HDF5

def mintpy_file(pair: ProductPair) -> Path | None:
    """The ifgramStack.h5 a MintPy pair comes from (its interferogram is ``HDF5:"<file>"://<dataset>``)."""
    match = re.fullmatch(r'HDF5:"(.+)"://\w+', pair.interferogram or "") if pair.product == "mintpy" else None
    return Path(match.group(1)) if match else None


def assemble_mintpy_stacks(jobs: Sequence[StackJob], outcome: StackResult, stack_filter: StackFilter,
                           progress: Progress, log: Callable[[str], None]) -> None:
    """Beside each MintPy stack's outputs, ``<stack>_insarml.h5``: ``wrapPhase`` and ``coherence`` of every pair.

    Same layout as the input (pairs in its order, its ``date`` and ``dropIfgram`` datasets, its
    root attributes) so MintPy and the plugin read it like the original. Failed pairs are NaN
    and dropped (``dropIfgram`` False). Written under a temporary name, then renamed.
    """
    by_stack: dict[Path, list[tuple[StackJob, PairResult]]] = {}
    for job, result in zip(jobs, outcome.results):
        h5 = mintpy_file(job.pair)
        if h5 is not None:
            by_stack.setdefault(h5, []).append((job, result))
    for h5, members in by_stack.items():
        target = members[0][0].outputs.phase.parent / f"{h5.stem}_insarml.h5"
        if target.is_file() and all(result.status == "skipped" for _, result in members):
            outcome.stacks.append(str(target))
            continue
        try:
            import h5py
        except ImportError:
            outcome.notes.append(f"{h5.name}: the filtered pairs are GeoTIFFs only; to also get {target.name}, "
                                 f"install h5py: {python_install_command(H5PY_REQUIREMENT)}")
            log(outcome.notes[-1])
            continue
        _write_mintpy_stack(h5py, h5, target, members, stack_filter, progress)
        outcome.stacks.append(str(target))
        log(f"Stack written: {target}")


def _write_mintpy_stack(h5py, source: Path, target: Path, members: list[tuple[StackJob, PairResult]],
                        stack_filter: StackFilter, progress: Progress) -> None:
    partial = target.with_name(f".{target.name}.partial")
    try:
        with h5py.File(source, "r") as original, h5py.File(partial, "w") as stack:
            count, height, width = original[_mintpy_dataset(original)].shape
            stack.attrs.update(original.attrs)
            stack.attrs.update({"INSARML_ALGORITHM": f"insarml:filter_stack ({stack_filter.method})",
                                "INSARML_PARAMETERS": json.dumps(asdict(stack_filter), sort_keys=True)})
            for name in ("date", "dropIfgram", "bperp"):
                if name in original:
                    original.copy(original[name], stack, name)
            keep = stack["dropIfgram"][:] if "dropIfgram" in stack else np.ones(count, bool)
            chunks = (1, min(height, 256), min(width, 256))
            phase = stack.create_dataset("wrapPhase", (count, height, width), np.float32, chunks=chunks,
                                         fillvalue=np.nan)
            coherence = stack.create_dataset("coherence", (count, height, width), np.float32, chunks=chunks,
                                             fillvalue=np.nan)
            for job, result in members:
                if progress.is_cancelled():
                    raise Cancelled("Cancelled by the user while writing the HDF5 stack; the pairs are kept.")
                index = job.pair.band - 1
                if result.status == "failed":
                    keep[index] = False
                    continue
                phase[index] = gdal.Open(str(job.outputs.phase)).ReadAsArray()
                coherence[index] = gdal.Open(str(job.outputs.coherence)).ReadAsArray()
            if "dropIfgram" in stack:
                stack["dropIfgram"][:] = keep
            else:
                stack["dropIfgram"] = keep
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _mintpy_dataset(h5) -> str:
    return next(name for name in ("wrapPhase", "unwrapPhase") if name in h5)


def python_install_command(requirement: str) -> str:
    from ..dependencies import python_executable

    return f"{python_executable()} -m pip install --user '{requirement}'"


def write_report(outcome: StackResult, inputs: str | Sequence[str], stack_filter: StackFilter) -> None:
    """The JSON report: settings, counts, failures with their errors, every pair's outcome."""
    report = {
        "inputs": [str(path) for path in _input_paths(inputs)],
        "filter": asdict(stack_filter),
        "pairs": len(outcome.results),
        **{status: outcome.count(status) for status in ("filtered", "skipped", "failed")},
        "seconds": outcome.seconds,
        "failures": [{"pair": r.pair, "error": r.error} for r in outcome.failures],
        "stacks": outcome.stacks,
        "notes": outcome.notes,
        "results": [asdict(r) for r in outcome.results],
    }
    partial = outcome.report.with_name(f".{outcome.report.name}.partial")
    partial.write_text(json.dumps(report, indent=2), encoding="utf-8")
    os.replace(partial, outcome.report)
