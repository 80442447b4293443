"""Training data for the diffusion models: synthetic InSAR scenes and folders of rasters.

``synthetic`` needs only numpy/scipy/GDAL, so datasets can be written without torch;
``folder`` returns torch tensors and is imported only by the training code.
"""
