"""Stack filtering: every pair of a LiCSAR frame or a MintPy stack, resumable, in process or on Dask workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, noisy_fringes, read_band, write_raster
from qgis_insar_ml.core.classical import filter_boxcar_raster, filter_goldstein_raster
from qgis_insar_ml.core.errors import Cancelled
from qgis_insar_ml.core.products import find_pairs, open_product
from qgis_insar_ml.core.raster_io import Window
from qgis_insar_ml.core.stack import REPORT_NAME, StackFilter, filter_stack

PAIRS = ("20200101_20200113", "20200113_20200125", "20200125_20200206")
BROKEN = "20200206_20200218"  # sorts last: the good pairs run first
ROWS, COLS = 48, 64


def make_frame(root: Path) -> Path:
    """A LiCSAR frame of wrapped phases: three good pairs and one truncated file."""
    frame = root / "frame"
    for seed, name in enumerate(PAIRS + (BROKEN,)):
        folder = frame / "interferograms" / name
        folder.mkdir(parents=True)
        rows, cols = (256, 256) if name == BROKEN else (ROWS, COLS)
        phase = np.angle(noisy_fringes(rows, cols, sigma=0.6, seed=seed)[1]).astype(np.float32)
        path = Path(write_raster(folder / f"{name}.geo.diff_pha.tif", phase))
    path.write_bytes(path.read_bytes()[:2000])  # the header survives, the pixels do not
    return frame


def phase_input(frame: Path, name: str) -> Path:
    return frame / "interferograms" / name / f"{name}.geo.diff_pha.tif"


def outputs(folder: Path, name: str) -> tuple[Path, Path]:
    stem = folder / "interferograms" / name / f"{name}.geo.diff_pha.insarml"
    return Path(f"{stem}.tif"), Path(f"{stem}.coherence.tif")


def single_pair_boxcar(frame: Path, name: str, tmp: Path, window: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The same pair through the single-pair core function."""
    tmp.mkdir(exist_ok=True)
    phase, coherence = tmp / f"{name}_phase.tif", tmp / f"{name}_coherence.tif"
    filter_boxcar_raster(open_product(str(phase_input(frame, name))).source(), window, str(phase), str(coherence))
    return read_band(str(phase)), read_band(str(coherence))


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


class StopWhen:
    """A Progress that asks to stop once the stack's progress passes ``percent``."""

    def __init__(self, percent: float):
        self.percent, self.seen, self.asked_at = percent, 0.0, None
        self.messages: list[str] = []

    def set_progress(self, percent: float) -> None:
        self.seen = max(self.seen, percent)

    def is_cancelled(self) -> bool:
        if self.seen >= self.percent and self.asked_at is None:
            self.asked_at = time.monotonic()
        return self.asked_at is not None

    def info(self, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
def frame(tmp_path) -> Path:
    return make_frame(tmp_path)


@pytest.fixture(scope="module")
def dask_scheduler():
    """Two single-threaded worker processes, shared by this module's Dask tests."""
    distributed = pytest.importorskip("distributed")
    environment = dict(os.environ)  # the nanny sets OMP_NUM_THREADS=1 & co. here too: not for the other tests
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        os.environ.clear()
        os.environ.update(environment)
        yield cluster.scheduler_address


def test_every_good_pair_is_filtered_the_broken_one_reported_and_a_rerun_skips(frame, tmp_path):
    progress = StopWhen(percent=1e9)  # never stops: records the log
    result = filter_stack(str(frame), StackFilter("boxcar", window=5), workers=0, progress=progress)
    assert (result.count("filtered"), result.count("skipped"), result.count("failed")) == (3, 0, 1)
    for name in PAIRS:
        phase, coherence = outputs(frame, name)
        expected = single_pair_boxcar(frame, name, tmp_path / "single")
        np.testing.assert_array_equal(read_band(str(phase)), expected[0])
        np.testing.assert_array_equal(read_band(str(coherence)), expected[1])
    assert not outputs(frame, BROKEN)[0].exists() and not hidden_files(frame)
    report = json.loads((frame / REPORT_NAME).read_text())
    assert [f["pair"] for f in report["failures"]] == [BROKEN]
    assert "damaged or truncated" in report["failures"][0]["error"] and f"{BROKEN}.geo.diff_pha.tif" in \
        report["failures"][0]["error"]
    assert any(m.startswith(f"[4/4] {BROKEN}: FAILED") for m in progress.messages)
    assert progress.seen == pytest.approx(100.0)

    written = {name: outputs(frame, name)[0].stat().st_mtime_ns for name in PAIRS}
    again = filter_stack(str(frame), StackFilter("boxcar", window=5), workers=0)
    assert (again.count("skipped"), again.count("failed"), len(again.results)) == (3, 1, 4)  # outputs are no pairs
    assert {name: outputs(frame, name)[0].stat().st_mtime_ns for name in PAIRS} == written

    log: list[str] = []
    redone = filter_stack(str(frame), StackFilter("boxcar", window=7), workers=0, log=log.append)
    assert redone.count("filtered") == 3
    assert any("made with other settings (WINDOW)" in line for line in log)
    np.testing.assert_array_equal(read_band(str(outputs(frame, PAIRS[0])[0])),
                                  single_pair_boxcar(frame, PAIRS[0], tmp_path / "single7", window=7)[0])


def test_a_rerun_skips_complete_pairs_without_opening_their_inputs(frame):
    filter_stack(str(frame), StackFilter("boxcar", window=5), workers=0)
    written = outputs(frame, PAIRS[0])[0].stat().st_mtime_ns
    phase_input(frame, PAIRS[0]).write_bytes(b"not a raster any more")
    again = filter_stack(str(frame), StackFilter("boxcar", window=5), workers=0)
    assert [r.status for r in again.results] == ["skipped", "skipped", "skipped", "failed"]
    assert outputs(frame, PAIRS[0])[0].stat().st_mtime_ns == written
    redone = filter_stack(str(frame), StackFilter("boxcar", window=7), workers=0)  # other settings: it is opened
    assert [r.status for r in redone.results] == ["failed", "filtered", "filtered", "failed"]
    assert redone.results[0].error.startswith(f"GDAL cannot read the product file {phase_input(frame, PAIRS[0])}")


def test_a_cancelled_run_leaves_no_partial_file_and_the_next_run_continues(frame, tmp_path):
    out = tmp_path / "out"
    progress = StopWhen(percent=30.0)  # during the second pair (each pair is a quarter)
    with pytest.raises(Cancelled, match="after 1 of 4 pairs.*run again to continue"):
        filter_stack(str(frame), StackFilter("goldstein", patch_size=8, tile_size=32), str(out), workers=0,
                     progress=progress)
    assert not hidden_files(out) and not hidden_files(frame)
    first = outputs(out, PAIRS[0])
    assert first[0].is_file() and first[1].is_file()
    assert not outputs(out, PAIRS[1])[0].exists()
    stamp = first[0].stat().st_mtime_ns

    resumed = filter_stack(str(frame), StackFilter("goldstein", patch_size=8, tile_size=32), str(out), workers=0)
    assert [r.status for r in resumed.results] == ["skipped", "filtered", "filtered", "failed"]
    assert first[0].stat().st_mtime_ns == stamp


def test_dask_workers_give_the_same_pixels_and_a_local_cluster_stops_cleanly(frame, tmp_path, dask_scheduler):
    stack_filter = StackFilter("boxcar", window=5)
    here = filter_stack(str(frame), stack_filter, str(tmp_path / "here"), workers=0)
    seen: dict[str, float] = {}
    remote = filter_stack(str(frame), stack_filter, str(tmp_path / "dask"), scheduler=dask_scheduler,
                          on_pair=lambda name, percent: seen.__setitem__(name, percent))
    assert [r.status for r in remote.results] == [r.status for r in here.results]
    assert remote.failures[0].error == here.failures[0].error
    for name in PAIRS:
        for ours, theirs in zip(outputs(tmp_path / "here", name), outputs(tmp_path / "dask", name)):
            np.testing.assert_array_equal(read_band(str(theirs)), read_band(str(ours)))
    assert seen == dict.fromkeys(PAIRS + (BROKEN,), 100.0)

    progress = StopWhen(percent=0.0)  # at once: running pairs stop, pending ones are dropped
    environment = dict(os.environ)
    with pytest.raises(Cancelled, match="run again to continue"):
        filter_stack(str(frame), stack_filter, str(tmp_path / "stopped"), workers=2, progress=progress)
    assert time.monotonic() - progress.asked_at < 5.0
    assert dict(os.environ) == environment  # a local cluster leaves this process's environment alone
    assert not hidden_files(tmp_path / "stopped")
    for name in PAIRS:  # each pair is complete or absent
        assert len({p.exists() for p in outputs(tmp_path / "stopped", name)}) == 1
    resumed = filter_stack(str(frame), stack_filter, str(tmp_path / "stopped"), scheduler=dask_scheduler)
    assert resumed.count("filtered") + resumed.count("skipped") == 3


def test_command_line_filters_a_stack_on_two_local_workers(frame, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "qgis_insar_ml", "filter", str(frame), "--method", "goldstein",
                           "--alpha", "0.8", "--workers", "2", "--output-folder", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # one pair failed
    assert f"FAILED {BROKEN}: INTERFEROGRAM" in done.stderr and "Traceback" not in done.stderr
    assert "pairs on 2 Dask workers" in done.stdout
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["filtered"], summary["failed"]) == (3, 1) and summary["report"] == str(out / REPORT_NAME)
    single = tmp_path / "single.tif"
    filter_goldstein_raster(open_product(str(phase_input(frame, PAIRS[1]))).source(), 0.8, 32,
                            output_phase=str(single), output_coherence=str(tmp_path / "single_coh.tif"))
    np.testing.assert_array_equal(read_band(str(outputs(out, PAIRS[1])[0])), read_band(str(single)))

    bad = subprocess.run([sys.executable, "-m", "qgis_insar_ml", "filter", str(frame), "--method", "boxcar",
                          "--window", "4", "--workers", "0"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "WINDOW must be an odd number" in bad.stderr and "Traceback" not in bad.stderr


def test_processing_algorithm_filters_the_stack_and_cancels(frame, tmp_path, insarml_provider):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines: list[str] = []

        def pushInfo(self, info):  # noqa: N802
            self.lines.append(info)

    feedback = Recorder()
    result = processing.run("insarml:filter_stack", {"INPUT_FOLDER": str(frame), "METHOD": 1, "WINDOW": 5,
                                                     "WORKERS": 0, "OUTPUT_FOLDER": str(tmp_path / "out")},
                            feedback=feedback)
    assert (result["FILTERED"], result["SKIPPED"], result["FAILED"]) == (3, 0, 1)
    assert result["REPORT"] == str(tmp_path / "out" / REPORT_NAME)
    assert any(line.startswith(f"FAILED {BROKEN}: INTERFEROGRAM") for line in feedback.lines)
    np.testing.assert_array_equal(read_band(str(outputs(tmp_path / "out", PAIRS[2])[1])),
                                  single_pair_boxcar(frame, PAIRS[2], tmp_path / "single")[1])

    stopper = QgsProcessingFeedback()
    stopper.progressChanged.connect(lambda percent: stopper.cancel() if percent > 40 else None)
    with pytest.raises(QgsProcessingException, match="Cancelled by the user after 1 of 3 pairs"):
        processing.run("insarml:filter_stack", {"INPUT_FILES": [str(phase_input(frame, n)) for n in PAIRS],
                                                "METHOD": 2, "PATCH_SIZE": 8, "TILE_SIZE": 32, "WORKERS": 0},
                       feedback=stopper)
    assert not hidden_files(frame)


def test_without_dask_the_stack_runs_in_process_and_parallel_runs_say_what_to_install(frame):
    code = f"""
import sys
sys.modules["distributed"] = sys.modules["dask"] = None  # as if not installed
from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.stack import StackFilter, filter_stack
log = []
result = filter_stack({str(frame)!r}, StackFilter("boxcar"), log=log.append)
assert result.count("filtered") == 3 and any("Dask is not installed" in line for line in log), log
try:
    filter_stack({str(frame)!r}, StackFilter("boxcar"), workers=2)
except InsarMlError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "need Dask distributed" in done.stdout and "pip install --user 'dask[distributed]==" in done.stdout
    provider = subprocess.run([sys.executable, "-c", "import sys; import qgis_insar_ml.processing.provider; "
                               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"],
                              cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert provider.stdout.strip() == "[]", provider.stderr


def make_mintpy_stack(folder: Path) -> Path:
    """An ifgramStack.h5 as MintPy writes it: 3 pairs, one of them all no-data."""
    h5py = pytest.importorskip("h5py")
    phases = [np.angle(noisy_fringes(ROWS, COLS, sigma=0.6, seed=seed)[1]).astype(np.float32) for seed in range(3)]
    phases[2][:] = np.nan
    path = folder / "ifgramStack.h5"
    with h5py.File(path, "w") as f:
        f["wrapPhase"] = np.stack(phases)
        f["unwrapPhase"] = np.stack(phases)
        f["coherence"] = np.full((3, ROWS, COLS), 0.7, np.float32)
        f["date"] = np.array([name.encode().split(b"_") for name in PAIRS])
        f["dropIfgram"] = np.ones(3, bool)
        f["bperp"] = np.array([10.0, -20.0, 5.0], np.float32)
        f.attrs.update({"FILE_TYPE": "ifgramStack", "WIDTH": str(COLS), "LENGTH": str(ROWS), "X_FIRST": "10.0",
                        "Y_FIRST": "50.0", "X_STEP": "0.001", "Y_STEP": "-0.001", "PLATFORM": "Sen"})
    return path


def test_mintpy_stack_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    source = make_mintpy_stack(tmp_path)
    result = filter_stack(str(source), StackFilter("boxcar", window=5), workers=0)
    assert [r.status for r in result.results] == ["filtered", "filtered", "failed"]
    assert "no valid pixel" in result.failures[0].error
    stack = tmp_path / "ifgramStack_insarml.h5"
    assert result.stacks == [str(stack)] and not hidden_files(tmp_path)
    with h5py.File(stack, "r") as f, h5py.File(source, "r") as original:
        for index, name in enumerate(PAIRS[:2]):
            tif = tmp_path / f"ifgramStack.{name}.insarml.tif"
            np.testing.assert_array_equal(f["wrapPhase"][index], read_band(str(tif)))
            np.testing.assert_array_equal(f["coherence"][index],
                                          read_band(str(tif.with_name(tif.stem + ".coherence.tif"))))
        assert np.isnan(f["wrapPhase"][2]).all() and list(f["dropIfgram"][:]) == [True, True, False]
        np.testing.assert_array_equal(f["date"][:], original["date"][:])
        np.testing.assert_array_equal(f["bperp"][:], original["bperp"][:])
        assert f.attrs["X_FIRST"] == "10.0" and f.attrs["FILE_TYPE"] == "ifgramStack"
        assert f.attrs["INSARML_ALGORITHM"] == "insarml:filter_stack (boxcar)"
    # the filtered stack reads back as a MintPy stack of the same pairs and pixels
    again = find_pairs(str(stack))
    assert [p.name for p in again] == list(PAIRS)
    first = again[0].source()
    window = first.read(Window(0, 0, ROWS, COLS))
    np.testing.assert_allclose(np.angle(window.interferogram),
                               read_band(str(tmp_path / f"ifgramStack.{PAIRS[0]}.insarml.tif")), atol=1e-6)
