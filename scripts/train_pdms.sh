#!/usr/bin/env bash
# Trains the five shipped PDMs one after the other (2 CPU cores: about 2 hours).
# Each run checkpoints to build/; rerun with RESUME=--resume to continue after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RESUME=${RESUME:-}
mkdir -p build
export PYTHONPATH=.
# 1. class-conditional 64x64 unwrapped interferograms, learned variance, hybrid loss, loss-aware t
$PY -m qgis_insar_ml train-pdm --dataset interferograms --image-size 64 \
    --channels 32 --channel-mult 1 1 2 2 --res-blocks 1 --attention 8 \
    --diffusion-steps 1000 --schedule cosine --steps ${STEPS_IFG:-2200} --batch-size 32 --lr 4e-4 \
    --output models/pdm_interferograms_64.safetensors --checkpoint build/pdm_interferograms_64.ckpt.pt $RESUME
# 2. class-conditional 32x32 noisy deformation scenes
$PY -m qgis_insar_ml train-pdm --dataset deformation --image-size 32 \
    --channels 32 --channel-mult 1 2 2 --res-blocks 1 --attention 4 \
    --diffusion-steps 1000 --schedule cosine --steps ${STEPS_DEF:-1500} --batch-size 32 --lr 4e-4 \
    --output models/pdm_deformation_32.safetensors --checkpoint build/pdm_deformation_32.ckpt.pt $RESUME
# 3. 2x super-resolution 64 -> 128 of the interferograms, trained on 64-pixel crops (fully convolutional)
$PY -m qgis_insar_ml train-pdm --dataset interferograms --image-size 128 --super-resolution --crop 64 \
    --channels 32 --channel-mult 1 1 2 2 --res-blocks 1 \
    --diffusion-steps 1000 --schedule cosine --steps ${STEPS_SR:-1000} --batch-size 16 --lr 4e-4 \
    --output models/pdm_superres_2x.safetensors --checkpoint build/pdm_superres_2x.ckpt.pt $RESUME
# 4. class-conditional SAR backscatter (built-in TenGeoP-like generator, dB), 64x64 at 100 m
$PY -m qgis_insar_ml train-pdm --dataset sar --image-size 64 \
    --channels 32 --channel-mult 1 1 2 2 --res-blocks 1 --attention 8 \
    --diffusion-steps 1000 --schedule cosine --steps ${STEPS_SAR:-2400} --batch-size 16 --lr 4e-4 \
    --output models/pdm_sar_64.safetensors --checkpoint build/pdm_sar_64.ckpt.pt $RESUME
# 5. its 2x super-resolution 64 (100 m) -> 128 (50 m), trained on 64-pixel crops
$PY -m qgis_insar_ml train-pdm --dataset sar --image-size 128 --super-resolution --crop 64 \
    --channels 32 --channel-mult 1 1 2 2 --res-blocks 1 \
    --diffusion-steps 1000 --schedule cosine --steps ${STEPS_SAR_SR:-1000} --batch-size 8 --lr 4e-4 \
    --output models/pdm_sar_superres_2x.safetensors --checkpoint build/pdm_sar_superres_2x.ckpt.pt $RESUME
