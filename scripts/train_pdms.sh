#!/usr/bin/env bash
# Trains the five shipped PDMs one after the other (2 CPU cores: about 2 hours).
# Each run checkpoints to build/; rerun with RESUME=--resume to continue after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RESUME=${RESUME:-}
mkdir -p build
export PYTHONPATH=.
# Every shipped PDM: a 32-channel U-Net, cosine schedule over T = 1000, learned variance (hybrid loss).
train() {  # train NAME STEPS BATCH ARGS...: models/NAME.safetensors, checkpoint build/NAME.ckpt.pt
    local name=$1 steps=$2 batch=$3
    shift 3
    $PY -m qgis_insar_ml train-pdm --channels 32 --res-blocks 1 --diffusion-steps 1000 --schedule cosine --lr 4e-4 \
        --steps "$steps" --batch-size "$batch" "$@" \
        --output "models/$name.safetensors" --checkpoint "build/$name.ckpt.pt" $RESUME
}
# 1. class-conditional 64x64 unwrapped interferograms, loss-aware t
train pdm_interferograms_64 "${STEPS_IFG:-2200}" 32 --dataset interferograms --image-size 64 \
    --channel-mult 1 1 2 2 --attention 8
# 2. class-conditional 32x32 noisy deformation scenes
train pdm_deformation_32 "${STEPS_DEF:-1500}" 32 --dataset deformation --image-size 32 --channel-mult 1 2 2 --attention 4
# 3. 2x super-resolution 64 -> 128 of the interferograms, trained on 64-pixel crops (fully convolutional)
train pdm_superres_2x "${STEPS_SR:-1000}" 16 --dataset interferograms --image-size 128 --super-resolution --crop 64 \
    --channel-mult 1 1 2 2
# 4. class-conditional SAR backscatter (built-in TenGeoP-like generator, dB), 64x64 at 100 m
train pdm_sar_64 "${STEPS_SAR:-2400}" 16 --dataset sar --image-size 64 --channel-mult 1 1 2 2 --attention 8
# 5. its 2x super-resolution 64 (100 m) -> 128 (50 m), on 64-pixel crops
train pdm_sar_superres_2x "${STEPS_SAR_SR:-1000}" 8 --dataset sar --image-size 128 --super-resolution --crop 64 \
    --channel-mult 1 1 2 2
