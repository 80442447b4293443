"""Numerical core of qgis_insar_ml: numpy, scipy, GDAL (and later torch).

Nothing in this package imports ``qgis``, so every function here also runs headless,
on a GPU server or in a plain Python session.

Interferogram convention used everywhere: ``ifg = reference * conj(secondary)``.
"""
