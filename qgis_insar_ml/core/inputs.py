"""The interferometric inputs of a filter, assembled window by window.

A filter takes either an SLC pair or an interferogram (complex, or phase in radians)
with optional amplitudes. Whatever was given, each window becomes one
:class:`InterferogramBlock`: the complex interferogram ``reference * conj(secondary)``,
the two SLC powers when known, and one validity mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import InsarMlError
from .raster_io import GridInfo, InputRaster, Window, check_same_grid


@dataclass
class InterferogramBlock:
    interferogram: np.ndarray              # complex64; invalid pixels are 0
    power_reference: np.ndarray | None     # |s1|^2, when SLCs or amplitudes were given
    power_secondary: np.ndarray | None
    valid: np.ndarray                      # bool


class InterferogramSource:
    """Reads interferogram windows from the inputs a user gave.

    ``coherence``: the product's own coherence (0-1), read beside the filter's inputs
    (:attr:`coherence_raster`). ``labels`` maps an input given as VRT XML (a product
    reader's conversion) to the user's file that error messages name.
    """

    def __init__(self, interferogram: str | None = None, slc_reference: str | None = None,
                 slc_secondary: str | None = None, amplitude_reference: str | None = None,
                 amplitude_secondary: str | None = None, interferogram_band: int | None = None,
                 coherence: str | None = None, labels: Mapping[str, str] | None = None):
        labels = labels or {}
        if interferogram and (slc_reference or slc_secondary):
            raise InsarMlError("Give either INTERFEROGRAM or the two SLCs (SLC_REFERENCE + SLC_SECONDARY), not both.")
        if bool(amplitude_reference) != bool(amplitude_secondary):
            raise InsarMlError("Give both AMPLITUDE_REFERENCE and AMPLITUDE_SECONDARY, or neither.")
        self._ifg = self._slc1 = self._slc2 = self._amp1 = self._amp2 = None
        if interferogram:
            self._ifg = InputRaster(interferogram, "INTERFEROGRAM", "interferogram", interferogram_band,
                                    "INTERFEROGRAM_BAND", labels.get(interferogram))
        elif slc_reference and slc_secondary:
            self._slc1 = InputRaster(slc_reference, "SLC_REFERENCE", "complex", label=labels.get(slc_reference))
            self._slc2 = InputRaster(slc_secondary, "SLC_SECONDARY", "complex", label=labels.get(slc_secondary))
        else:
            raise InsarMlError("No input: give INTERFEROGRAM (complex, or phase in radians), "
                               "or both SLC_REFERENCE and SLC_SECONDARY.")
        if amplitude_reference:
            self._amp1 = InputRaster(amplitude_reference, "AMPLITUDE_REFERENCE", "real",
                                     label=labels.get(amplitude_reference))
            # one file for both (HyP3's _amp, ISCE2's geometric mean): opened, checked and read once
            self._amp2 = self._amp1 if amplitude_secondary == amplitude_reference else InputRaster(
                amplitude_secondary, "AMPLITUDE_SECONDARY", "real", label=labels.get(amplitude_secondary))
        self.coherence_raster: InputRaster | None = (
            InputRaster(coherence, "COHERENCE", "real", label=labels.get(coherence)) if coherence else None)
        rasters = list(dict.fromkeys(r for r in (self._ifg, self._slc1, self._slc2, self._amp1, self._amp2,
                                                 self.coherence_raster) if r is not None))
        self.grid: GridInfo = check_same_grid(rasters)
        for amplitude in dict.fromkeys(a for a in (self._slc1, self._slc2, self._amp1, self._amp2) if a is not None):
            amplitude.refuse_zero_amplitude()

    @property
    def has_amplitudes(self) -> bool:
        """True when the SLC amplitudes are known (SLC pair, or amplitudes given)."""
        return self._slc1 is not None or self._amp1 is not None

    def amplitude_sample(self, max_pixels: int = 2**20) -> tuple[np.ndarray, np.ndarray]:
        """Decimated amplitudes of the whole raster (for normalisation statistics)."""
        pair = (self._amp1, self._amp2) if self._amp1 is not None else (self._slc1, self._slc2)
        if pair[0] is None:
            raise InsarMlError("These inputs carry no amplitudes (give the SLCs or both amplitude rasters).")
        first = pair[0].read_sample(max_pixels)
        return first, first if pair[1] is pair[0] else pair[1].read_sample(max_pixels)

    def read(self, window: Window) -> InterferogramBlock:
        p1 = p2 = None
        if self._slc1 is not None:
            s1, v1 = self._slc1.read(window)
            s2, v2 = self._slc2.read(window)
            valid = v1 & v2
            ifg = s1 * np.conj(s2)
            p1, p2 = np.abs(s1) ** 2, np.abs(s2) ** 2
        else:
            values, valid = self._ifg.read(window)
            ifg = np.exp(1j * values) if self._ifg.is_phase_only else values
        if self._amp1 is not None:
            a1, va1 = self._amp1.read(window)
            a2, va2 = (a1, va1) if self._amp2 is self._amp1 else self._amp2.read(window)
            valid = valid & va1 & va2
            p1, p2 = a1.astype(np.float32) ** 2, a2.astype(np.float32) ** 2
            if self._ifg is not None and self._ifg.is_phase_only:
                ifg = ifg * (a1 * a2)
        zero = ~valid
        ifg = np.where(zero, 0, ifg).astype(np.complex64)
        if p1 is not None:
            p1 = np.where(zero, 0, p1).astype(np.float32)
            p2 = np.where(zero, 0, p2).astype(np.float32)
        return InterferogramBlock(ifg, p1, p2, valid)
