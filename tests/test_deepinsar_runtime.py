"""CPU runtimes of DeepInSAR inference: OpenVINO against torch, the fallback, the precision rule."""
from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from qgis_insar_ml.core.deepinsar import cpu_runtime, inference
from qgis_insar_ml.core.deepinsar.cpu_runtime import cpu_runner
from qgis_insar_ml.core.deepinsar.inference import filter_deepinsar_raster
from qgis_insar_ml.core.deepinsar.model import DEFAULT_CONFIG, DeepInsarConfig, DeepInsarNet
from qgis_insar_ml.core.deepinsar.modelfile import load_model, read_model, save_model
from qgis_insar_ml.core.deepinsar.torch_runner import TorchRunner
from qgis_insar_ml.core.errors import InsarMlError
from qgis_insar_ml.core.inputs import InterferogramSource
from qgis_insar_ml.core.raster_io import InputRaster
from qgis_insar_ml.core.simulator import simulate_pair

from conftest import REPO, read_band, write_raster

SHIPPED_4CH = REPO / "models" / "deepinsar_4ch.safetensors"
has_openvino = pytest.mark.skipif(not cpu_runtime.openvino_available(), reason="OpenVINO is not installed")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Converted models go to this test's folder, and no runtime/precision comes from outside."""
    monkeypatch.setenv(cpu_runtime.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(cpu_runtime.RUNTIME_ENV, raising=False)
    monkeypatch.delenv(cpu_runtime.PRECISION_ENV, raising=False)


def _small_model(tmp_path, config: DeepInsarConfig = DEFAULT_CONFIG, seed: int = 3) -> str:
    torch.manual_seed(seed)
    net = DeepInsarNet(config)
    for module in net.modules():  # non-trivial BatchNorm statistics, as a trained model has
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return str(save_model(net.state_dict(), config, {}, tmp_path / f"small{seed}.safetensors"))


def _pair_source(tmp_path, height: int = 150, width: int = 170) -> InterferogramSource:
    pair = simulate_pair(height, width, "S2", "F2", True, 9)
    return InterferogramSource(slc_reference=write_raster(tmp_path / "s1.tif", pair.reference),
                               slc_secondary=write_raster(tmp_path / "s2.tif", pair.secondary))


def _wrapped_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(np.angle(np.exp(1j * (a.astype(np.float64) - b))) ** 2)))


@has_openvino
@pytest.mark.parametrize("tiles", [(2, 64, 96), (1, 70, 53)])  # odd sizes: padded like torch pads
def test_openvino_runner_matches_torch_on_tiles(tmp_path, tiles):
    shape = (tiles[0], DEFAULT_CONFIG.network_inputs, *tiles[1:])
    path = _small_model(tmp_path)
    net, _ = load_model(path)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    phase_t, coh_t = TorchRunner(net, torch.device("cpu")).run(x)
    runner = cpu_runner(net, tmp_path / "small3.safetensors", runtime="openvino")
    assert runner.name == "openvino"
    phase_o, coh_o = runner.run(x)
    assert phase_o.shape == phase_t.shape == shape[:1] + shape[2:] and coh_o.dtype == np.float32
    assert _wrapped_rms(phase_o, phase_t) < 1e-4 and np.abs(coh_o - coh_t).max() < 1e-4


@has_openvino
def test_openvino_and_torch_give_the_same_rasters_and_the_conversion_is_cached(tmp_path, monkeypatch):
    src = _pair_source(tmp_path)
    model = _small_model(tmp_path)
    logs = {}
    outputs = {}
    for runtime in ("torch", "openvino", "openvino"):
        monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, runtime)
        monkeypatch.setenv(cpu_runtime.PRECISION_ENV, "float32")
        logged: list[str] = []
        name = f"{runtime}{len(logs)}"
        outputs[name] = filter_deepinsar_raster(
            src, model, device="cpu", tile_size=96, overlap=24, output_phase=str(tmp_path / f"{name}_p.tif"),
            output_coherence=str(tmp_path / f"{name}_c.tif"), log=logged.append)
        logs[name] = logged
    assert any("on torch on cpu" in m for m in logs["torch0"])
    assert any("on OpenVINO" in m for m in logs["openvino1"])
    assert any("converted the model once" in m for m in logs["openvino1"])
    assert not any("converted" in m for m in logs["openvino2"])  # read back from the cache
    assert list((tmp_path / "cache" / "openvino").glob("deepinsar-*.xml"))
    assert list((tmp_path / "cache" / "openvino" / "compiled").glob("*.blob"))  # the compilations are kept too
    torch_phase, ov_phase = read_band(outputs["torch0"]["OUTPUT_PHASE"]), read_band(outputs["openvino2"]["OUTPUT_PHASE"])
    torch_coh, ov_coh = read_band(outputs["torch0"]["OUTPUT_COHERENCE"]), read_band(outputs["openvino2"]["OUTPUT_COHERENCE"])
    assert np.isfinite(ov_phase).all() and _wrapped_rms(ov_phase, torch_phase) < 1e-4
    assert np.abs(ov_coh - torch_coh).max() < 1e-4
    assert "RUNTIME" in InputRaster(outputs["openvino2"]["OUTPUT_PHASE"], "x", "real").dataset.GetMetadata()[
        "INSARML_PARAMETERS"]


def test_without_openvino_the_cpu_falls_back_to_torch(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    assert not cpu_runtime.openvino_available()
    net, _ = load_model(_small_model(tmp_path))
    assert cpu_runner(net, None).name == "torch"
    monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, "openvino")
    with pytest.raises(InsarMlError, match="OpenVINO cannot be imported"):
        cpu_runner(net, None)
    monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, "auto")
    logged: list[str] = []
    src = _pair_source(tmp_path, 64, 80)
    out = filter_deepinsar_raster(src, _small_model(tmp_path), device="cpu", output_phase=str(tmp_path / "p.tif"),
                                  log=logged.append)
    assert any("on torch on cpu" in m for m in logged) and np.isfinite(read_band(out["OUTPUT_PHASE"])).all()


def test_a_runtime_that_fails_to_convert_falls_back_to_torch(tmp_path, monkeypatch):
    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("conversion failed on purpose")

    monkeypatch.setattr(cpu_runtime, "openvino_available", lambda: True)
    monkeypatch.setattr(cpu_runtime, "OpenVinoRunner", Broken)
    net, _ = load_model(_small_model(tmp_path))
    logged: list[str] = []
    assert cpu_runner(net, None, logged.append).name == "torch"
    assert "conversion failed on purpose" in logged[0] and "using torch" in logged[0]


def test_bad_runtime_and_precision_settings_are_refused(monkeypatch):
    monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, "tensorrt")
    with pytest.raises(InsarMlError, match="use one of auto, torch, openvino"):
        cpu_runtime.requested_runtime()
    monkeypatch.setenv(cpu_runtime.PRECISION_ENV, "int8")
    with pytest.raises(InsarMlError, match="use one of auto, float32"):
        cpu_runtime.requested_precision()


class _Recording:
    """A runner whose reduced precision is available and differs from float32 by a set amount.

    ``coherence``: what both precisions predict (0.5 everywhere by default); ``columns``: the
    columns the offset applies to (all by default)."""

    name = "recording"
    on_gpu = False

    def __init__(self, offset: float, available: bool = True, coherence=None, columns=slice(None), fails=False):
        self.offset, self.available, self.calls, self.released = offset, available, [], []
        self.coherence, self.columns, self.fails = coherence, columns, fails

    def reduced_precision_available(self) -> bool:
        return self.available

    def release(self, reduced: bool) -> None:
        self.released.append(reduced)

    def run(self, batch, reduced=False):
        self.calls.append(reduced)
        if reduced and self.fails:
            raise RuntimeError("no bfloat16 kernels here")
        phase = np.zeros(batch.shape[:1] + batch.shape[2:], np.float32)
        if reduced:
            phase[..., self.columns] += self.offset
        coherence = np.full_like(phase, 0.5) if self.coherence is None else np.broadcast_to(self.coherence, phase.shape)
        return phase, coherence.copy()


def test_cpu_precision_rule_is_the_gpu_rule(monkeypatch):
    obs = np.zeros((2, 8, 8), np.float32)
    logged: list[str] = []
    close = _Recording(0.001)
    reduced, (phase, _) = inference.choose_runner_precision(close, obs, logged.append)
    assert reduced and np.allclose(phase, 0.001) and close.calls == [False, True]
    assert close.released == [False]  # one precision's working memory at a time; bfloat16 stays compiled
    assert "using mixed precision" in logged[-1]
    far = _Recording(0.02)  # 0.02 rad in every pixel > AMP_PHASE_TOLERANCE, whatever the weights
    reduced, (phase, _) = inference.choose_runner_precision(far, obs, logged.append)
    assert not reduced and np.allclose(phase, 0.0) and "keeping float32" in logged[-1]
    assert far.released == [False, True]
    broken = _Recording(0.0, fails=True)  # bfloat16 announced but failing: float32's tile, not run again
    reduced, (phase, _) = inference.choose_runner_precision(broken, obs, logged.append)
    assert not reduced and broken.calls == [False, True] and "using float32" in logged[-1]
    # a tolerance of 0: nothing is "no worse" than exact, float32 must win
    monkeypatch.setattr(inference, "AMP_PHASE_TOLERANCE", 0.0)
    assert not inference.choose_runner_precision(_Recording(0.0), obs, logged.append)[0]
    # no native bfloat16: float32 without trying
    none = _Recording(0.0, available=False)
    assert not inference.choose_runner_precision(none, obs, logged.append)[0] and none.calls == [False]
    assert "no native bfloat16" in logged[-1]
    monkeypatch.setattr(inference, "AMP_PHASE_TOLERANCE", 0.01)
    monkeypatch.setenv(cpu_runtime.PRECISION_ENV, "float32")
    forced = _Recording(0.0)
    assert not inference.choose_runner_precision(forced, obs, logged.append)[0] and forced.calls == [False]


def test_the_precision_rule_weights_the_phase_by_how_well_it_is_determined():
    """A change confined to incoherent pixels (γ = 0.05) passes; the same change where γ = 0.95 fails."""
    obs = np.zeros((2, 16, 16), np.float32)
    coherence = np.full((16, 16), 0.95, np.float32)
    coherence[:, :8] = 0.05
    logged: list[str] = []
    noise = _Recording(0.05, coherence=coherence, columns=slice(0, 8))
    assert inference.choose_runner_precision(noise, obs, logged.append)[0]
    assert "0.0354 unweighted" in logged[-1]  # the old, unweighted rule would have refused it
    signal = _Recording(0.05, coherence=coherence, columns=slice(8, 16))
    assert not inference.choose_runner_precision(signal, obs, logged.append)[0]
    nothing = _Recording(0.05, coherence=np.zeros((16, 16), np.float32))  # no phase is determined anywhere
    assert inference.choose_runner_precision(nothing, obs, logged.append)[0]


@pytest.mark.parametrize("runtime", ["torch", pytest.param("openvino", marks=has_openvino)])
@pytest.mark.parametrize("size", [64, 448])
def test_real_runtimes_decide_precision_on_the_first_tile(tmp_path, monkeypatch, runtime, size):
    """With a tolerance of 0 the check must keep float32, and the tile equals the float32 one;
    a tile larger than the checked crop is then run whole in the precision chosen."""
    net, _ = load_model(_small_model(tmp_path))
    runner = cpu_runner(net, None, runtime=runtime)
    obs = np.random.default_rng(1).uniform(-1, 1, (DEFAULT_CONFIG.network_inputs, size, size + 16)).astype(np.float32)
    logged: list[str] = []
    monkeypatch.setattr(inference, "AMP_PHASE_TOLERANCE", 0.0)
    reduced, (phase, coherence) = inference.choose_runner_precision(runner, obs, logged.append)
    assert not reduced and phase.shape == (size, size + 16)
    exact_phase, exact_coherence = runner.run(obs[None], False)
    assert np.array_equal(phase, exact_phase[0]) and np.array_equal(coherence, exact_coherence[0])
    if runner.reduced_precision_available():
        assert "keeping float32" in logged[-1]
        monkeypatch.setattr(inference, "AMP_PHASE_TOLERANCE", 10.0)
        monkeypatch.setattr(inference, "AMP_COHERENCE_TOLERANCE", 10.0)
        reduced, (phase, _) = inference.choose_runner_precision(runner, obs, logged.append)
        assert reduced and np.array_equal(phase, runner.run(obs[None], True)[0][0])
    else:
        assert "no native bfloat16" in logged[-1]


@has_openvino
@pytest.mark.skipif(not SHIPPED_4CH.is_file(), reason="shipped model not built yet")
def test_shipped_model_through_openvino_matches_torch_on_a_raster(tmp_path, monkeypatch):
    src = _pair_source(tmp_path, 300, 260)
    out = {}
    for runtime in ("torch", "openvino"):
        monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, runtime)
        logged: list[str] = []
        out[runtime] = filter_deepinsar_raster(src, device="cpu", tile_size=224, output_phase=str(tmp_path / f"{runtime}_p.tif"),
                                               output_coherence=str(tmp_path / f"{runtime}_c.tif"), log=logged.append)
        bf16 = any("using mixed precision" in m for m in logged)
    # the precision rule bounds bfloat16's first-tile change at 0.01 rad RMS weighted by coherence²
    tolerance = 0.02 if bf16 else 1e-3
    torch_coherence = read_band(out["torch"]["OUTPUT_COHERENCE"])
    difference = np.angle(np.exp(1j * (read_band(out["openvino"]["OUTPUT_PHASE"]).astype(np.float64)
                                       - read_band(out["torch"]["OUTPUT_PHASE"]))))
    weight = torch_coherence.astype(np.float64) ** 2
    phase_rms = float(np.sqrt(np.sum(weight * difference ** 2) / np.sum(weight)))
    coh = np.abs(read_band(out["openvino"]["OUTPUT_COHERENCE"]) - torch_coherence)
    assert phase_rms < tolerance and float(np.sqrt(np.mean(coh ** 2))) < tolerance


def test_large_raster_amplitude_sample_reads_blocks_and_matches_the_statistics(tmp_path):
    """Above 16 Mpx-equivalents the sample is whole random blocks; its median and MAD stay close."""
    rng = np.random.default_rng(5)
    amplitude = rng.rayleigh(1.0, (600, 700)).astype(np.float32)
    path = write_raster(tmp_path / "amp.tif", amplitude.astype(np.complex64))
    raster = InputRaster(path, "SLC", "complex")
    small_budget = 600 * 700 // 40  # the raster holds 40 budgets: sampled by blocks
    sample = raster.read_sample(small_budget)
    assert sample.ndim == 1 and 0 < sample.size <= small_budget
    whole = raster.read_sample(2**20)  # decimated read of everything
    assert abs(np.median(sample) - np.median(whole)) < 0.05 * np.median(whole)


TORCH_FREE_RUN = r"""
import json, sys
sys.path.insert(0, {repo!r})
from qgis_insar_ml.dependencies import require_torch
from qgis_insar_ml.core.deepinsar.inference import filter_deepinsar_raster
from qgis_insar_ml.core.inputs import InterferogramSource
require_torch()  # installed, not imported
logged = []
src = InterferogramSource(slc_reference={s1!r}, slc_secondary={s2!r})
filter_deepinsar_raster(src, {model!r}, device={device!r}, tile_size=96, overlap=24, output_phase={phase!r},
                        output_coherence={coherence!r}, log=logged.append)
print("RESULT", json.dumps({{"torch": "torch" in sys.modules, "log": logged}}))
"""


@has_openvino
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_a_cached_openvino_model_runs_without_importing_torch(tmp_path, monkeypatch, device):
    if device == "auto" and not cpu_runtime.cpu_without_torch("auto"):
        pytest.skip("torch may see a GPU here: 'auto' asks torch")
    src = _pair_source(tmp_path)
    model = _small_model(tmp_path)
    monkeypatch.setenv(cpu_runtime.PRECISION_ENV, "float32")
    filter_deepinsar_raster(src, model, device="cpu", tile_size=96, overlap=24,  # loads torch, converts, caches
                            output_phase=str(tmp_path / "p0.tif"), output_coherence=str(tmp_path / "c0.tif"))
    code = TORCH_FREE_RUN.format(repo=str(REPO), s1=str(tmp_path / "s1.tif"), s2=str(tmp_path / "s2.tif"), model=model,
                                 device=device, phase=str(tmp_path / "p1.tif"), coherence=str(tmp_path / "c1.tif"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    assert not result["torch"] and any("on OpenVINO" in m for m in result["log"])
    assert not any("converted" in m for m in result["log"])
    for name in ("p", "c"):  # the same runtime and model as the run through torch: the same rasters
        assert np.array_equal(read_band(str(tmp_path / f"{name}0.tif")), read_band(str(tmp_path / f"{name}1.tif")),
                              equal_nan=True)


@has_openvino
def test_the_torch_free_runner_needs_the_cache_and_respects_the_runtime_setting(tmp_path, monkeypatch):
    model = _small_model(tmp_path)
    weights, _, config = read_model(model)
    assert cpu_runtime.cached_cpu_runner(config, weights) is None  # not converted yet
    net, _ = load_model(model)
    assert cpu_runner(net, weights).name == "openvino"  # converts and caches
    runner = cpu_runtime.cached_cpu_runner(config, weights)
    x = np.random.default_rng(2).uniform(-1, 1, (1, config.network_inputs, 64, 72)).astype(np.float32)
    assert runner is not None and all(np.array_equal(a, b) for a, b in zip(runner.run(x), cpu_runner(net, weights).run(x)))
    monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, "torch")
    assert cpu_runtime.cached_cpu_runner(config, weights) is None


def test_the_device_is_decided_without_torch_only_when_no_gpu_can_be_there(monkeypatch):
    assert cpu_runtime.cpu_without_torch("cpu") and not cpu_runtime.cpu_without_torch("cuda:0")
    build = cpu_runtime._torch_build()
    assert build == {"cuda": torch.version.cuda, "hip": torch.version.hip}  # read from torch's version.py
    if cpu_runtime.cpu_without_torch("auto"):
        assert not torch.cuda.is_available()
    monkeypatch.setattr(cpu_runtime, "_torch_build", lambda: {"cuda": None, "hip": None})
    assert cpu_runtime.cpu_without_torch("auto") and cpu_runtime.cpu_without_torch("")
    monkeypatch.setattr(cpu_runtime, "_torch_build", lambda: {"cuda": "12.8", "hip": None})
    assert cpu_runtime.cpu_without_torch("auto") == (
        sys.platform.startswith("linux") and not any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/dxg")))
    monkeypatch.setattr(cpu_runtime, "_torch_build", lambda: {"cuda": None, "hip": "6.4"})
    assert not cpu_runtime.cpu_without_torch("auto")
    monkeypatch.setattr(cpu_runtime, "_torch_build", lambda: None)  # unreadable: torch decides
    assert not cpu_runtime.cpu_without_torch("auto")
