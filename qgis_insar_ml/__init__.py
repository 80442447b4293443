"""qgis_insar_ml: radar deep learning for QGIS (DeepInSAR, diffusion models)."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """QGIS entry point."""
    from .plugin import InsarMlPlugin

    return InsarMlPlugin(iface)
