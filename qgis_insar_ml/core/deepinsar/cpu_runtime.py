"""Runtimes that run a DeepInSAR network on tiles: torch everywhere, OpenVINO on the CPU when installed.

torch stays the training and GPU path and the fallback (:mod:`.torch_runner`). On the CPU,
OpenVINO (an optional dependency: ``pip install openvino``) runs the same network 2–3×
faster in float32 and about 5× faster in bfloat16 on CPUs that have it (AVX512-BF16, AMX);
see ``benchmarks/deepinsar_throughput.py``. Whether a runtime may use reduced precision is
decided at run time on the first tile (:func:`..inference.choose_runner_precision`).

The OpenVINO model is converted from the torch network, which itself is rebuilt from the
safetensors weights and the JSON card, so model files stay data. The converted model (an
OpenVINO IR: an XML graph and the raw float32 weights, no code) is cached under the user's
cache folder, keyed by the SHA-256 of the weights and the architecture and by the OpenVINO
and torch versions, so only the first run of a model pays the conversion (1–3 s). A cached
model is read and run without importing torch (:func:`cached_cpu_runner`): the import
alone costs about 0.9 s and 190 MB, a fifth of a 4 Mpx run, so this module and
:mod:`.inference` import torch only where a run needs it. If the cache cannot be written
the model is kept in memory only. OpenVINO's own compilations of it (one per precision) are
cached beside it, in ``openvino/compiled`` (:func:`_cache_compiled_models`).

``INSARML_CPU_RUNTIME`` = ``auto`` (default: OpenVINO when importable, else torch),
``torch`` or ``openvino`` (an error when it is not installed) selects the CPU runtime;
``INSARML_CPU_PRECISION`` = ``auto`` (default: the first-tile check) or ``float32``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import InsarMlError
from .config import DeepInsarConfig

if TYPE_CHECKING:
    from .model import DeepInsarNet
    from .torch_runner import TorchRunner

RUNTIME_ENV = "INSARML_CPU_RUNTIME"
PRECISION_ENV = "INSARML_CPU_PRECISION"
CACHE_ENV = "INSARML_CACHE_DIR"
RUNTIMES = ("auto", "torch", "openvino")
PRECISIONS = ("auto", "float32")


class NotCached(Exception):
    """The model has no cached OpenVINO conversion, and no network was given to convert."""


class OpenVinoRunner:
    """The network converted to OpenVINO, compiled for the CPU in float32 and, when asked, bfloat16.

    ``net`` None: the converted model must be in the cache (else :class:`NotCached`), and
    torch is not imported. OpenVINO picks the threads (the physical cores this process may use).
    """

    name = "openvino"
    on_gpu = False

    def __init__(self, config: DeepInsarConfig, weights: Path | None, net: DeepInsarNet | None = None,
                 log: Callable[[str], None] = lambda m: None):
        import openvino as ov

        self._ov = ov
        self.core = ov.Core()
        _cache_compiled_models(self.core)
        self.scale = config.downsample
        self.channels = config.network_inputs
        self.model = _openvino_model(ov, self.core, config, weights, net, log)
        self._compiled: dict[bool, object] = {}
        self._requests: dict[bool, object] = {}
        self._compile(False)  # fails here, inside cpu_runner's fallback, if OpenVINO cannot run it
        self.threads = int(self._compiled[False].get_property("INFERENCE_NUM_THREADS"))

    def describe(self) -> str:
        return f"OpenVINO {self._ov.__version__.split('-')[0]} on cpu ({self.threads} threads)"

    def reduced_precision_available(self) -> bool:
        try:
            return "BF16" in self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        except RuntimeError:
            return False

    def _compile(self, reduced: bool):
        if reduced not in self._compiled:
            compiled = self.core.compile_model(self.model, "CPU", {
                "INFERENCE_PRECISION_HINT": "bf16" if reduced else "f32",
                "PERFORMANCE_HINT": "LATENCY",
            })
            self._compiled[reduced] = compiled
            self._requests[reduced] = compiled.create_infer_request()
        return self._requests[reduced]

    def release(self, reduced: bool) -> None:
        """Free one precision's compiled model and working memory (compiled again if needed)."""
        self._requests.pop(reduced, None)
        self._compiled.pop(reduced, None)

    def run(self, batch: np.ndarray, reduced: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(phase, coherence), each (N, H, W) float32, of a (N, C, H, W) float32 batch."""
        height, width = batch.shape[-2:]
        s = self.scale
        pad_h, pad_w = (-height) % s, (-width) % s
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if pad_h or pad_w:  # what the torch network does inside (the converted graph has no padding branch)
            x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        request = self._compile(reduced)
        request.infer({0: x})
        residual = request.get_output_tensor(0).data
        logits = request.get_output_tensor(1).data
        re = batch[:, 0] - residual[:, 0, :height, :width]
        im = batch[:, 1] - residual[:, 1, :height, :width]
        phase = np.arctan2(im, re)
        coherence = logits[:, 0, :height, :width].astype(np.float32)  # a copy: the request reuses its buffers
        np.negative(coherence, out=coherence)
        np.exp(coherence, out=coherence)
        coherence += 1.0
        np.reciprocal(coherence, out=coherence)
        return phase.astype(np.float32, copy=False), coherence


def _cache_compiled_models(core) -> None:
    """Let OpenVINO keep its compiled models (one per precision) beside the converted ones.

    A cached compilation loads in 0.03 s instead of 0.08 s, and a run compiles twice (the
    precision check). Without a writable folder OpenVINO simply compiles every time.
    """
    folder = cache_dir() / "openvino" / "compiled"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            core.set_property({"CACHE_DIR": str(folder)})
    except (OSError, RuntimeError):
        pass


def return_freed_memory() -> None:
    """glibc only: allocations of 4 MB and more (tile arrays) by mmap, so freeing gives them back.

    glibc raises its mmap threshold (up to 32 MB) after large blocks are freed, so the next
    tiles' arrays come from the heap, which fragments and keeps its peak: a 64 Mpx run peaked
    126 MB higher (902 vs 776 MB in-process) for 8 % less time. A 1 MB threshold saved little
    more and cost 25 % (page faults). Process-wide; a no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD; a set value is never adjusted
    except (OSError, AttributeError):
        pass


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 (ImportError, or a broken install raising anything)
        return False
    return True


def requested_runtime() -> str:
    value = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise InsarMlError(f"{RUNTIME_ENV}={value!r}: use one of {', '.join(RUNTIMES)}.")
    return value


def requested_precision() -> str:
    value = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise InsarMlError(f"{PRECISION_ENV}={value!r}: use one of {', '.join(PRECISIONS)}.")
    return value


def cpu_runner(net: DeepInsarNet, weights: Path | None, log: Callable[[str], None] = lambda m: None,
               runtime: str | None = None) -> OpenVinoRunner | TorchRunner:
    """The fastest runtime available for ``net`` on the CPU; torch when OpenVINO is absent or fails."""
    runtime = runtime or requested_runtime()
    return_freed_memory()
    if runtime in ("auto", "openvino"):
        if not openvino_available():
            if runtime == "openvino":
                raise InsarMlError(f"{RUNTIME_ENV}=openvino, but OpenVINO cannot be imported. "
                                   f"Install it with: {sys.executable} -m pip install openvino")
        else:
            try:
                return OpenVinoRunner(net.config, weights, net, log)
            except Exception as exc:  # noqa: BLE001 (any conversion/compile failure: torch still works)
                if runtime == "openvino":
                    raise InsarMlError(f"OpenVINO could not run this model ({exc}).") from None
                log(f"OpenVINO could not run this model ({str(exc).splitlines()[0][:200]}); using torch.")
    import torch  # loaded already (``net`` is a torch network); deferred so this module needs no torch

    from .torch_runner import TorchRunner

    return TorchRunner(net, torch.device("cpu"))


def cached_cpu_runner(config: DeepInsarConfig, weights: Path) -> OpenVinoRunner | None:
    """The OpenVINO runner of a model file whose conversion is cached, without importing torch.

    None where :func:`cpu_runner` decides instead: the setting asks for torch, OpenVINO is
    absent, the model is not cached yet, or OpenVINO fails on it (cpu_runner then says why
    and falls back to torch, or raises when OpenVINO was required).
    """
    if requested_runtime() == "torch" or not openvino_available():
        return None
    return_freed_memory()
    try:
        return OpenVinoRunner(config, weights)
    except Exception:  # noqa: BLE001 (NotCached, or a failure cpu_runner reports)
        return None


def cpu_without_torch(device: str) -> bool:
    """Whether ``device`` means the CPU, decided without importing torch.

    ``cpu``; or ``auto`` where torch cannot see a GPU: a build without CUDA and ROCm, or on
    Linux a CUDA build with no NVIDIA driver loaded (no ``/proc/driver/nvidia/version``, and
    no ``/dev/dxg`` as under WSL). Anything else (a GPU may be there) is left to torch.
    """
    device = device.strip().lower()
    if device in ("cpu", "cpu:0"):
        return True
    build = _torch_build() if device in ("", "auto") else None
    if build is None:
        return False
    if build["cuda"] is None and build["hip"] is None:
        return True
    return (sys.platform.startswith("linux") and build["hip"] is None
            and not Path("/proc/driver/nvidia/version").exists() and not Path("/dev/dxg").exists())


def _torch_build() -> dict[str, str | None] | None:
    """``cuda`` and ``hip`` of torch's version.py, read as text; None when it cannot be read."""
    try:
        spec = importlib.util.find_spec("torch")
        text = Path(spec.origin).with_name("version.py").read_text(encoding="utf-8")
    except (AttributeError, ImportError, OSError, TypeError, ValueError):
        return None
    build: dict[str, str | None] = {}
    for name in ("cuda", "hip"):
        match = re.search(rf"^{name}\s*(?::[^=]*)?=\s*(None|'[^']*')\s*$", text, re.MULTILINE)
        if match is None:
            return None
        build[name] = None if match.group(1) == "None" else match.group(1)[1:-1]
    return build


def cache_dir() -> Path:
    """Where converted models are cached: $INSARML_CACHE_DIR, else the platform's user cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "qgis_insar_ml"


def _model_key(ov, config: DeepInsarConfig, weights: Path | None, net: DeepInsarNet | None) -> str:
    digest = hashlib.sha256()
    if weights is not None and weights.is_file():
        digest.update(weights.read_bytes())
    elif net is not None:  # an in-memory network: its tensors
        for name, tensor in sorted(net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    else:
        raise NotCached("neither a weights file nor a network")
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(f"openvino {ov.__version__} torch {_torch_version()}".encode())
    return digest.hexdigest()[:32]


def _torch_version() -> str:
    """torch's version (the conversion depends on it), without importing torch."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _openvino_model(ov, core, config: DeepInsarConfig, weights: Path | None, net: DeepInsarNet | None,
                    log: Callable[[str], None]):
    key = _model_key(ov, config, weights, net)
    folder = cache_dir() / "openvino"
    xml = folder / f"deepinsar-{key}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        try:
            return core.read_model(str(xml))
        except RuntimeError as exc:
            if net is None:
                raise NotCached(f"{xml} is unreadable") from None
            log(f"Cached OpenVINO model {xml} is unreadable ({exc}); converting again.")
    if net is None:
        raise NotCached(str(xml))
    import warnings

    import torch  # a cache miss: the network is converted from torch, once

    from .model import DeepInsarNet

    s = config.downsample
    example = torch.zeros(1, config.network_inputs, 16 * s, 16 * s)
    cpu_net = DeepInsarNet(config)
    cpu_net.load_state_dict({k: v.detach().cpu() for k, v in net.state_dict().items()})
    cpu_net.eval()
    with warnings.catch_warnings():  # tracing warns about the padding branch, which the runner replaces
        warnings.simplefilter("ignore")
        model = ov.convert_model(cpu_net, example_input=example)
    if model.inputs[0].partial_shape.is_static:  # tiles come in several shapes
        model.reshape({model.inputs[0]: ov.PartialShape([-1, config.network_inputs, -1, -1])})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".deepinsar-{key}.{os.getpid()}.xml"
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
        log(f"OpenVINO: converted the model once, cached as {xml}")
    except (OSError, RuntimeError) as exc:
        log(f"OpenVINO: could not cache the converted model in {folder} ({exc}); keeping it in memory.")
    return model
