"""The torch runtime of DeepInSAR inference: the training and GPU path, and the CPU fallback.

In its own module so that :mod:`.cpu_runtime` and :mod:`.inference` import torch only when
a run needs it (a cached OpenVINO model runs without it).
"""
from __future__ import annotations

import numpy as np
import torch

from .model import DeepInsarNet, restore


class TorchRunner:
    """The torch network on its device; ``reduced`` = bfloat16 autocast."""

    name = "torch"

    def __init__(self, net: DeepInsarNet, device: torch.device):
        self.net = net.to(device=device, memory_format=torch.channels_last).eval()
        self.device = device
        self.on_gpu = device.type == "cuda"

    def describe(self) -> str:
        if self.on_gpu:
            return f"torch on {self.device} ({torch.cuda.get_device_name(self.device)})"
        return f"torch on cpu ({torch.get_num_threads()} threads)"

    def reduced_precision_available(self) -> bool:
        if self.on_gpu:
            return True
        try:  # bfloat16 on a CPU without native support is emulated and slower than float32
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False

    def release(self, reduced: bool) -> None:
        """Nothing to free: torch allocates per call."""

    @torch.inference_mode()
    def run(self, batch: np.ndarray, reduced: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(phase, coherence), each (N, H, W) float32, of a (N, C, H, W) float32 batch."""
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        if reduced:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                residual, logits = self.net(x)
        else:
            residual, logits = self.net(x)
        phase, _ = restore(x, residual.float())
        return phase.float().cpu().numpy(), torch.sigmoid(logits[:, 0].float()).cpu().numpy()
