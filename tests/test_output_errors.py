"""Outputs that cannot be written: a full disk, a read-only folder, a write that fails.

Each must end in one InsarMlError (a QgsProcessingException through Processing) that names
the output file and the fix, and leave no file behind, hidden ones included. The full and
read-only disks are real: small tmpfs mounts, which need root (as in CI); elsewhere those
tests are skipped and the file-size-limit test still covers a failing write.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from qgis_insar_ml.core.classical import filter_boxcar_raster
from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.inputs import InterferogramSource
from qgis_insar_ml.core.raster_io import GridInfo, OutputBand, OutputRaster, Window

from conftest import noisy_fringes, write_raster

FULL = r"Cannot write the output .*p\.tif: the disk holding .* is full\. Free some space"
READ_ONLY = r"Cannot write the output .*p\.tif: the folder .* is read-only .* Choose an output in a writable folder"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mounts a tmpfs of the given size (read-only on request) in tmp_path; unmounts it after."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("a real full or read-only disk is a tmpfs mount, which needs root (CI runs as root)")
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): the container lacks CAP_SYS_ADMIN")
        mounted.append(folder)
        return folder

    yield mount
    busy = [folder for folder in mounted if subprocess.run(["umount", str(folder)], capture_output=True).returncode]
    for folder in busy:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
    assert not busy, f"a file on {busy} was still open: a failed output must close its file"


@pytest.fixture
def interferogram(tmp_path: Path) -> str:
    """A noisy 300×300 interferogram: its outputs compress to far more than 64 kB."""
    return write_raster(tmp_path / "ifg.tif", noisy_fringes(300, 300)[1])


def _run_boxcar(interferogram: str, folder: Path) -> None:
    filter_boxcar_raster(InterferogramSource(interferogram=interferogram), 5,
                         str(folder / "p.tif"), str(folder / "c.tif"))


def test_full_disk_is_one_clear_error_and_leaves_nothing(small_disk, interferogram):
    disk = small_disk("64k")
    with pytest.raises(InsarMlError, match=FULL):
        _run_boxcar(interferogram, disk)
    assert list(disk.iterdir()) == []


def test_read_only_folder_is_one_clear_error(small_disk, interferogram):
    disk = small_disk("1m", read_only=True)
    with pytest.raises(InsarMlError, match=READ_ONLY):
        _run_boxcar(interferogram, disk)
    assert list(disk.iterdir()) == []


def test_disk_filling_up_before_commit_fails_cleanly(small_disk):
    """Blocks still in GDAL's cache reach the disk at commit: that failure is reported too."""
    disk = small_disk("1m")
    out = OutputRaster(disk / "p.tif", GridInfo(300, 300, None, ""), [OutputBand("x")])
    out.write(Window(0, 0, 300, 300), np.random.default_rng(1).random((300, 300), np.float32))
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        while True:
            os.write(filler, bytes(2**16))
    os.close(filler)
    with pytest.raises(InsarMlError, match=FULL):
        out.commit()
    assert [p.name for p in disk.iterdir()] == ["filler"]


@pytest.mark.parametrize("size, read_only, message", [("64k", False, FULL), ("1m", True, READ_ONLY)])
def test_processing_reports_unwritable_outputs(small_disk, interferogram, insarml_provider, size, read_only, message):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    disk = small_disk(size, read_only=read_only)
    with pytest.raises(QgsProcessingException, match=message):
        processing.run("insarml:filter_boxcar", {"INTERFEROGRAM": interferogram, "WINDOW": 5,
                                                 "OUTPUT_PHASE": str(disk / "p.tif"),
                                                 "OUTPUT_COHERENCE": str(disk / "c.tif")},
                       feedback=QgsProcessingFeedback())
    assert list(disk.iterdir()) == []


def test_failing_write_without_root(tmp_path, interferogram):
    """A file-size limit makes writes fail as a full disk would, without mounting anything."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel ends the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**16, hard))
    try:
        with pytest.raises(InsarMlError, match=r"Cannot write the output .*p\.tif \(.*\)\. Check that the folder "
                                               r"is writable and that its disk has free space"):
            _run_boxcar(interferogram, tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ifg.tif"]
