"""One table of GPU figures, in a few minutes on one GPU (CI never runs it).

    python benchmarks/gpu_check.py [--model-4ch M] [--model-phase M] [--out-json F]
    python benchmarks/gpu_check.py --device cpu --quick     # a smoke test of the script itself

- DeepInSAR inference throughput (network only, inputs already on the GPU) at several
  tile and batch sizes, in float32 and under bfloat16 autocast;
- float32 against bfloat16: phase and coherence RMS differences on a simulated scene,
  the same check the filter makes on its first tile before it uses bfloat16;
- DeepInSAR and PDM training steps per second (network, loss, backward, optimiser step);
- PDM samples per second with SDE-DPM-Solver++ at 20 network evaluations.

It needs torch with CUDA, numpy and scipy, not GDAL or QGIS.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qgis_insar_ml.core.deepinsar.fringes import network_input  # noqa: E402
from qgis_insar_ml.core.deepinsar.model import DeepInsarNet, restore  # noqa: E402
from qgis_insar_ml.core.deepinsar.modelfile import load_model  # noqa: E402
from qgis_insar_ml.core.deepinsar.observation import make_observation  # noqa: E402
from qgis_insar_ml.core.deepinsar.training import losses  # noqa: E402
from qgis_insar_ml.core.deepinsar.data import SimulatedPatches  # noqa: E402
from qgis_insar_ml.core.diffusion.pdm_file import load_pdm  # noqa: E402
from qgis_insar_ml.core.diffusion.sampling import sample_dpm_solver  # noqa: E402
from qgis_insar_ml.core.simulator import simulate_pair  # noqa: E402

MODELS = REPO / "models"


TILES, BATCHES, SAMPLE_BATCHES = (512, 1024, 2048), (1, 4, 16), (64, 512)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``run`` after warm-up, with the GPU synchronised."""
    for _ in range(warmup):
        run()
    synchronize(device)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def inference_rows(net: DeepInsarNet, name: str, device: torch.device) -> list[dict]:
    rows = []
    for tile in TILES:
        for batch in BATCHES:
            x = torch.rand(batch, net.config.network_inputs, tile, tile, device=device)
            x = x.contiguous(memory_format=torch.channels_last)
            for dtype in (None, torch.bfloat16):
                def run():
                    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                                                                enabled=dtype is not None):
                        net(x)
                seconds = timed(run, device, repeats=5)
                rows.append({"what": f"{name} inference", "tile": tile, "batch": batch,
                             "precision": "bf16" if dtype else "fp32",
                             "mpx_per_s": batch * tile * tile / seconds / 1e6})
            del x
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


@torch.inference_mode()
def precision_agreement(net: DeepInsarNet, name: str, device: torch.device) -> dict:
    """bf16 against fp32 on an S2-F2 scene of the paper's simulator, as large as the largest tile."""
    size = max(TILES)
    pair = simulate_pair(size, size, "S2", "F2", True, seed=7)
    amplitudes = (np.abs(pair.reference), np.abs(pair.secondary)) if net.config.in_channels == 4 else None
    observation = network_input(make_observation(np.angle(pair.interferogram), amplitudes), net.config.fringe_windows)
    x = torch.from_numpy(observation[None]).to(device)
    outputs = {}
    for label, enabled in (("fp32", False), ("bf16", True)):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
            residual, logits = net(x)
        outputs[label] = (restore(x, residual.float())[0], torch.sigmoid(logits.float()))
    dphase = torch.remainder(outputs["bf16"][0] - outputs["fp32"][0] + math.pi, 2 * math.pi) - math.pi
    dcoh = outputs["bf16"][1] - outputs["fp32"][1]
    return {"what": f"{name} bf16 vs fp32", "phase_rms_rad": float(dphase.pow(2).mean().sqrt()),
            "coherence_rms": float(dcoh.pow(2).mean().sqrt())}


def deepinsar_training_row(net: DeepInsarNet, name: str, device: torch.device) -> dict:
    net = DeepInsarNet(net.config).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = SimulatedPatches(0, 128, net.config.in_channels).batch(0, 32)
    batch = replace(batch, observation=network_input(batch.observation, net.config.fringe_windows))

    def step():
        loss = losses(net, batch, device, 1.0, balance=True)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = timed(step, device, repeats=20, warmup=3)
    return {"what": f"{name} training step (batch 32 of 128², simulation excluded)", "steps_per_s": 1 / seconds}


def pdm_rows(device: torch.device) -> list[dict]:
    pdm = load_pdm(MODELS / "pdm_interferograms_64.safetensors", device)
    diffusion = pdm.diffusion()
    c = pdm.config
    rows = []
    net = pdm.model.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x0 = torch.rand(32, c.in_channels, c.image_size, c.image_size, device=device) * 2 - 1
    labels = torch.zeros(32, dtype=torch.long, device=device)

    def step():
        t = torch.randint(0, diffusion.num_timesteps, (32,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = diffusion.training_losses(net, x0, t, model_kwargs={"y": labels})["loss"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    rows.append({"what": f"PDM training step (64², batch 32, bf16, {sum(p.numel() for p in net.parameters())} "
                         "parameters)", "steps_per_s": 1 / timed(step, device, repeats=20, warmup=3)})
    net.eval()
    for count in SAMPLE_BATCHES:
        y = torch.arange(count, device=device) % (c.num_classes or 1)

        def sample():
            with torch.no_grad():
                sample_dpm_solver(diffusion, net, (count, c.in_channels, c.image_size, c.image_size), 20,
                                  torch.Generator(device=device).manual_seed(0), {"y": y}, None, True,
                                  order=2, skip="logSNR", eta=1.0)
        rows.append({"what": f"PDM sampling, SDE-DPM-Solver++ 20 NFE, batch {count}",
                     "samples_per_s": count / timed(sample, device, repeats=3, warmup=1)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| measurement | tile | batch | precision | value |", "|---|---|---|---|---|"]
    for r in rows:
        if "mpx_per_s" in r:
            value = f"{r['mpx_per_s']:.1f} Mpx/s"
        elif "phase_rms_rad" in r:
            value = f"phase {r['phase_rms_rad']:.4f} rad RMS, coherence {r['coherence_rms']:.4f} RMS"
        elif "steps_per_s" in r:
            value = f"{r['steps_per_s']:.1f} steps/s"
        else:
            value = f"{r['samples_per_s']:.1f} samples/s"
        lines.append(f"| {r['what']} | {r.get('tile', '')} | {r.get('batch', '')} | {r.get('precision', '')} "
                     f"| {value} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-4ch", default=str(MODELS / "deepinsar_4ch.safetensors"))
    parser.add_argument("--model-phase", default=str(MODELS / "deepinsar_phase.safetensors"))
    parser.add_argument("--out-json", help="write every figure here too")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="one small tile and batch: checks the script runs")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check needs a CUDA GPU; this torch sees none.")
    if args.quick:
        global TILES, BATCHES, SAMPLE_BATCHES
        TILES, BATCHES, SAMPLE_BATCHES = (128,), (1,), (2,)
    torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    rows: list[dict] = []
    for name, path in (("DeepInSAR 4-ch", args.model_4ch), ("DeepInSAR phase-only", args.model_phase)):
        net = load_model(path, device)[0].to(memory_format=torch.channels_last)
        rows += inference_rows(net, name, device)
        rows.append(precision_agreement(net, name, device))
        rows.append(deepinsar_training_row(net, name, device))
    rows += pdm_rows(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    header = (f"{name}, torch {torch.__version__}, "
              f"{time.perf_counter() - started:.0f} s in all")
    print(header)
    print(table(rows))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps({"device": header, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
