"""Headless command line: ``python -m qgis_insar_ml train-deepinsar|train-pdm|filter ...``.

Runs the same core code as the Processing algorithms, without QGIS, e.g. on a GPU
server; under ``torchrun --nproc_per_node N`` it trains with DistributedDataParallel;
``filter`` filters a whole stack, on a Dask cluster when asked.
"""
from __future__ import annotations

import argparse
import json
import sys

from .core.errors import Cancelled, InsarMlError


def _train_deepinsar(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .core.deepinsar.model import DEFAULT_CONFIG, PAPER_CONFIG
    from .core.deepinsar.training import TrainSettings, train_deepinsar

    teacher = None
    if args.reference_phase:
        teacher = {"interferogram": args.interferogram, "slc_reference": args.slc_reference,
                   "slc_secondary": args.slc_secondary, "amplitude_reference": args.amplitude_reference,
                   "amplitude_secondary": args.amplitude_secondary, "reference_phase": args.reference_phase,
                   "reference_coherence": args.reference_coherence}
    architecture = PAPER_CONFIG if args.architecture == "paper" else DEFAULT_CONFIG
    if args.growth or args.dilations:
        architecture = replace(architecture, **({"growth": args.growth} if args.growth else {}),
                               **({"dilations": tuple(args.dilations)} if args.dilations else {}))
    settings = TrainSettings(
        output=args.output, in_channels=2 if args.phase_only else 4, architecture=architecture, steps=args.steps,
        batch_size=args.batch_size, patch_size=args.patch_size, learning_rate=args.lr, seed=args.seed,
        checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
        patience=args.patience, resume=args.resume, device=args.device, teacher=teacher,
        binarize_coherence=not args.soft_coherence, balance=not args.unbalanced, configurations=args.configurations,
        realistic=args.realistic, workers=args.workers,
        time_limit_s=60.0 * args.max_minutes if args.max_minutes else None, init=args.init)
    result = train_deepinsar(settings, log=lambda message: print(message, flush=True))
    print(json.dumps({"model": result.model, "steps": result.steps_done,
                      "best_validation_loss": result.best_validation_loss, "stopped_early": result.stopped_early}))


def _train_pdm(args: argparse.Namespace) -> None:
    from .core.diffusion.training import PdmTrainSettings, train_pdm

    settings = PdmTrainSettings(
        output=args.output, dataset=args.dataset, image_size=args.image_size, super_resolution=args.super_resolution,
        crop=args.crop, folder_crop=args.folder_crop, decibels=args.decibels,
        class_conditional=not args.unconditional,
        label_dropout=args.label_dropout, model_channels=args.channels, channel_mult=tuple(args.channel_mult),
        num_res_blocks=args.res_blocks, attention_resolutions=tuple(args.attention), dropout=args.dropout,
        learn_sigma=not args.fixed_variance, diffusion_steps=args.diffusion_steps, noise_schedule=args.schedule,
        timestep_sampler=args.timestep_sampler, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=args.warmup, ema_rate=args.ema, grad_clip=args.grad_clip,
        seed=args.seed, checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every, resume=args.resume, device=args.device)
    result = train_pdm(settings, log=lambda message: print(message, flush=True))
    print(json.dumps({"model": result.model, "steps": result.steps_done,
                      "final_validation_loss": result.final_validation_loss}))


class _ConsoleProgress:
    """Prints the stack's and each pair's progress; Ctrl-C asks for a clean stop (a second one stops at once)."""

    PAIR_STEP = 25  # percent between a pair's progress lines

    def __init__(self) -> None:
        self.cancelled = False
        self.percent = 0.0
        self._pair_steps: dict[str, int] = {}

    def set_progress(self, percent: float) -> None:
        self.percent = percent

    def is_cancelled(self) -> bool:
        return self.cancelled

    def info(self, message: str) -> None:
        print(f"[{self.percent:3.0f}%] {message}", flush=True)

    def on_pair(self, name: str, percent: float) -> None:
        step = int(percent // self.PAIR_STEP)
        if 0 < step < 100 // self.PAIR_STEP and step > self._pair_steps.get(name, 0):
            self._pair_steps[name] = step
            self.info(f"{name}: {step * self.PAIR_STEP}%")

    def interrupt(self, signum, frame) -> None:
        if self.cancelled:
            raise KeyboardInterrupt
        self.cancelled = True
        print("Stopping: removing partial files (Ctrl-C again to stop at once)...", file=sys.stderr, flush=True)


def _filter(args: argparse.Namespace) -> int:
    import signal

    from .core.deepinsar.looks_coherence import parse_look_count
    from .core.stack import StackFilter, filter_stack

    stack_filter = StackFilter(method=args.method, window=args.window, alpha=args.alpha, patch_size=args.patch_size,
                               coherence_window=args.coherence_window, model=args.model, device=args.device,
                               tile_size=args.tile_size, overlap=args.overlap,
                               looks=parse_look_count(args.looks))
    progress = _ConsoleProgress()
    signal.signal(signal.SIGINT, progress.interrupt)
    result = filter_stack(args.inputs, stack_filter, args.output_folder, args.workers, args.scheduler, progress,
                          on_pair=progress.on_pair)
    for failure in result.failures:
        print(f"FAILED {failure.pair}: {failure.error}", file=sys.stderr)
    print(json.dumps({status: result.count(status) for status in ("filtered", "skipped", "failed")}
                     | {"report": str(result.report), "seconds": result.seconds}))
    return 1 if result.failures else 0


def _export_checkpoint(args: argparse.Namespace) -> None:
    from .core.deepinsar.training import export_checkpoint

    print(export_checkpoint(args.checkpoint, args.output))


def _fit_looks_coherence(args: argparse.Namespace) -> None:
    from .core.deepinsar.looks_coherence import fit_looks_coherence

    print(fit_looks_coherence(args.model, args.scenes, args.steps, args.seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qgis_insar_ml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train-deepinsar", help="train a DeepInSAR model (simulator or teacher-student)")
    train.add_argument("--output", required=True, help="model file to write (.safetensors + .json card)")
    train.add_argument("--phase-only", action="store_true", help="the [cos, sin] variant for products without amplitudes")
    train.add_argument("--architecture", choices=("default", "paper"), default="default")
    train.add_argument("--growth", type=int, help="override the dense growth rate")
    train.add_argument("--dilations", type=int, nargs="+", help="override the dense layers' dilations")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--patch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint", help="checkpoint file (default: <output>.ckpt.pt)")
    train.add_argument("--checkpoint-every", type=int, default=200)
    train.add_argument("--validate-every", type=int, default=100)
    train.add_argument("--patience", type=int, default=10, help="validation rounds without improvement")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--configurations", nargs="+", metavar="NAME",
                       help="simulator mix to cycle through, e.g. S1-F1-NS S2-F3-S (repeat a name to weigh it more; "
                            "default: all 18 once)")
    train.add_argument("--realistic", type=float, default=0.0,
                       help="share of realistic-simulator scenes (speckle, coherence maps, multilooking, real-world "
                            "signals) among the simulated ones; the rest come from the paper's simulator")
    train.add_argument("--workers", type=int, default=0,
                       help="processes that simulate batches ahead (simulation limits the speed on a GPU)")
    train.add_argument("--init", help="start from this model file's weights (fine-tuning; the same architecture, "
                       "or one that adds dense layers after its own: --dilations)")
    train.add_argument("--max-minutes", type=float, help="stop after this long, keeping the best validated state")
    train.add_argument("--unbalanced", action="store_true",
                       help="plain eq. 9 phase loss instead of each patch's error relative to its own noise")
    teacher = train.add_argument_group("teacher-student mode (real data)")
    for name in ("interferogram", "slc-reference", "slc-secondary", "amplitude-reference", "amplitude-secondary",
                 "reference-phase", "reference-coherence"):
        teacher.add_argument(f"--{name}")
    teacher.add_argument("--soft-coherence", action="store_true", help="do not threshold the reference coherence at 0.5")
    train.set_defaults(run=_train_deepinsar)
    pdm = commands.add_parser("train-pdm", help="train a diffusion model (PDM) on a built-in dataset or a folder")
    pdm.add_argument("--output", required=True, help="model file to write (.safetensors + .json card)")
    pdm.add_argument("--dataset", default="interferograms",
                     help="'interferograms', 'deformation', 'sar' (Sentinel-1 wave-mode σ0, learned in dB) or a "
                          "folder of rasters (one subfolder per class; "
                          "TenGeoP-SARwv: its GeoTIFF folder or the folder above it)")
    pdm.add_argument("--image-size", type=int, default=64, help="generated size (the high-res size for --super-resolution)")
    pdm.add_argument("--super-resolution", action="store_true", help="learn 2x super-resolution of image-size/2 inputs")
    pdm.add_argument("--crop", type=int, help="super-resolution: train on random crops of this size")
    pdm.add_argument("--folder-crop", type=int, help="folder datasets: crop this, then downscale to image-size")
    pdm.add_argument("--decibels", action="store_true",
                     help="folder datasets of SAR backscatter: learn 10*log10(sigma0) of the downscaled crops "
                          "(floor -40 dB); the card's coefficients are then in dB")
    pdm.add_argument("--unconditional", action="store_true", help="ignore the class labels")
    pdm.add_argument("--label-dropout", type=float, default=0.1, help="null-label share for classifier-free guidance")
    pdm.add_argument("--channels", type=int, default=32, help="U-Net base channels")
    pdm.add_argument("--channel-mult", type=int, nargs="+", default=[1, 1, 2, 2])
    pdm.add_argument("--res-blocks", type=int, default=1)
    pdm.add_argument("--attention", type=int, nargs="*", default=[8], help="downsample rates with attention")
    pdm.add_argument("--dropout", type=float, default=0.0)
    pdm.add_argument("--fixed-variance", action="store_true", help="do not learn the variance (L_simple only)")
    pdm.add_argument("--diffusion-steps", type=int, default=1000)
    pdm.add_argument("--schedule", choices=("linear", "cosine"), default="cosine")
    pdm.add_argument("--timestep-sampler", choices=("loss-aware", "uniform"), default="loss-aware")
    pdm.add_argument("--steps", type=int, default=2000)
    pdm.add_argument("--batch-size", type=int, default=32)
    pdm.add_argument("--lr", type=float, default=2e-4)
    pdm.add_argument("--warmup", type=int, default=100)
    pdm.add_argument("--ema", type=float, default=0.999)
    pdm.add_argument("--grad-clip", type=float, default=1.0)
    pdm.add_argument("--seed", type=int, default=0)
    pdm.add_argument("--checkpoint", help="checkpoint file (default: <output>.ckpt.pt)")
    pdm.add_argument("--checkpoint-every", type=int, default=200)
    pdm.add_argument("--validate-every", type=int, default=100)
    pdm.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    pdm.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    pdm.set_defaults(run=_train_pdm)
    export = commands.add_parser("export-checkpoint", help="write a checkpoint's best state as a model file")
    export.add_argument("checkpoint")
    export.add_argument("output", help="model file to write (.safetensors + .json card)")
    export.set_defaults(run=_export_checkpoint)
    fit = commands.add_parser("fit-looks-coherence",
                              help="fit a phase-only model's looks-aware coherence and write it into its card")
    fit.add_argument("model", help="phase-only model file (.safetensors with its .json card)")
    fit.add_argument("--scenes", type=int, default=400, help="simulated scenes (192 px; about 10 per second)")
    fit.add_argument("--steps", type=int, default=4000)
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(run=_fit_looks_coherence)
    stack = commands.add_parser(
        "filter", help="filter every pair of a stack (folder, files, LiCSAR frame, HyP3 folder(s), MintPy h5)",
        description="Writes <stem>.tif (filtered phase) and <stem>.coherence.tif per pair, beside the inputs or "
                    "under --output-folder, and a JSON report that lists the pairs that failed. Complete outputs "
                    "made with the same settings are skipped: a stopped run continues where it stopped.")
    stack.add_argument("inputs", nargs="+", help="a folder, raster files, a LiCSAR frame, HyP3 folder(s) or a "
                                                 "MintPy ifgramStack.h5")
    stack.add_argument("--method", choices=("deepinsar", "boxcar", "goldstein"), default="deepinsar")
    stack.add_argument("--output-folder", help="write here, with the inputs' folder layout (default: beside them)")
    stack.add_argument("--window", type=int, default=5, help="Boxcar window [px, odd]")
    stack.add_argument("--alpha", type=float, default=0.5, help="Goldstein filter strength (0-1)")
    stack.add_argument("--patch-size", type=int, default=32, help="Goldstein patch [px, power of two]")
    stack.add_argument("--coherence-window", type=int,
                       help="Goldstein's boxcar coherence / DeepInSAR's compensated coherence window "
                            "(default: 5 / 9; 0 = DeepInSAR's coherence head)")
    stack.add_argument("--looks", help="looks of phase-only pairs, rows x columns (20x4) or a number: DeepInSAR's "
                                       "looks-aware coherence (default: unknown, the network's head)")
    stack.add_argument("--model", help="DeepInSAR model file (default: the shipped model that fits the inputs)")
    stack.add_argument("--device", default="auto", help="DeepInSAR: auto, cpu, cuda or cuda:N")
    stack.add_argument("--tile-size", type=int, help="tile size [px] (default: each filter's)")
    stack.add_argument("--overlap", type=int, help="tile overlap [px] (default: each filter's)")
    stack.add_argument("--workers", type=int,
                       help="worker processes of a local Dask cluster (default: one per core; DeepInSAR: one per "
                            "GPU, or this process on the CPU); 0 or 1 = one pair after another in this process, "
                            "without Dask")
    stack.add_argument("--scheduler", help="submit to this Dask scheduler (tcp://host:8786) instead; the workers "
                                           "must see the inputs and outputs at the same paths")
    stack.set_defaults(run=_filter)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (InsarMlError, Cancelled) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
