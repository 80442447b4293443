"""The interferogram/SLC/amplitude inputs that the filter algorithms share, or one InSAR product instead."""
from __future__ import annotations

from qgis.core import QgsProcessingContext, QgsProcessingParameterFile, QgsProcessingParameterString

from ..core.errors import InsarMlError
from ..core.inputs import InterferogramSource
from ..core.products import open_product
from .base import InsarMlAlgorithm
from .compat import FOLDER

INPUTS = {
    "INTERFEROGRAM": "Interferogram (complex, or wrapped phase in radians)",
    "SLC_REFERENCE": "Reference SLC (complex)",
    "SLC_SECONDARY": "Secondary SLC (complex)",
    "AMPLITUDE_REFERENCE": "Reference amplitude",
    "AMPLITUDE_SECONDARY": "Secondary amplitude",
}
BAND = "INTERFEROGRAM_BAND"  # picks one band of a multi-band interferogram raster
PRODUCT, PAIR = "PRODUCT", "PAIR"  # an InSAR product read by core.products, instead of the rasters


def add_interferogram_inputs(algorithm: InsarMlAlgorithm, slcs: bool) -> None:
    """Add PRODUCT and PAIR, then the optional input rasters (SLC pair only where the algorithm accepts it)."""
    # a folder parameter: every product is a folder (pair, job, merged/, .data, MintPy), and it also
    # accepts a file typed in, which a file parameter refuses for folders; the reader says what it
    # expected when the path is not a product
    algorithm.addParameter(QgsProcessingParameterFile(
        PRODUCT, "InSAR product instead of the rasters below: LiCSAR/LiCSBAS pair or frame folder, HyP3 job folder, "
        "ISCE2 merged/, SNAP .data (or .dim typed in), MintPy folder (or ifgramStack.h5 typed in)",
        behavior=FOLDER, optional=True))
    algorithm.addParameter(QgsProcessingParameterString(
        PAIR, "Pair of a stack product (YYYYMMDD_YYYYMMDD or index; empty = the first)", optional=True))
    for name, description in INPUTS.items():
        if slcs or not name.startswith("SLC_"):
            algorithm.add_raster_input(name, description)
    algorithm.add_advanced_int(BAND, "Interferogram band (empty = a single band, or two bands real + imaginary)",
                               None, 1, 65535)


def interferogram_arguments(algorithm: InsarMlAlgorithm, parameters: dict, context: QgsProcessingContext) -> dict:
    """The InterferogramSource keyword arguments of these parameters (of the product, when PRODUCT is set).

    The product reader's notes (what it chose and why) go to the algorithm's log.
    """
    product = algorithm.parameterAsFile(parameters, PRODUCT, context) if parameters.get(PRODUCT) else ""
    if not product:
        if parameters.get(PAIR):
            raise InsarMlError("PAIR picks a pair of PRODUCT, but no PRODUCT is given.")
        arguments = {name.lower(): algorithm.raster_path(parameters, name, context)
                     for name in INPUTS if name in parameters}
        return arguments | {BAND.lower(): algorithm.optional_int(parameters, BAND, context)}
    given = [name for name in (*INPUTS, BAND) if parameters.get(name) not in (None, "")]
    if given:
        raise InsarMlError(f"Give either PRODUCT or the input rasters ({', '.join(given)}), not both: "
                           "PRODUCT reads the interferogram, amplitudes and coherence from the product.")
    pair = open_product(product, algorithm.parameterAsString(parameters, PAIR, context).strip() or None)
    feedback = context.feedback()
    if feedback is not None:
        for note in (f"Product: {pair.product}, pair {pair.name}.", *pair.notes):
            feedback.pushInfo(note)
    return pair.source_arguments()


def interferogram_source(algorithm: InsarMlAlgorithm, parameters: dict,
                         context: QgsProcessingContext) -> InterferogramSource:
    return InterferogramSource(**interferogram_arguments(algorithm, parameters, context))
