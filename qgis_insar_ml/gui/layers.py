"""Outputs as styled layers, grouped under the input's name, with their provenance recorded."""
from __future__ import annotations

import json

from qgis.core import QgsProject, QgsRasterLayer

from ..core.errors import InsarMlError
from ..paths import data_dir

PHASE, COHERENCE, UNWRAPPED = "phase", "coherence", "unwrapped"


def style_path(style: str) -> str:
    return str(data_dir("resources") / "styles" / f"{style}.qml")


def stretch_symmetric(layer: QgsRasterLayer) -> None:
    """Scale the unwrapped style (stored for −1…1) to ±max|value| of this scene, so 0 stays white."""
    stats = layer.dataProvider().bandStatistics(1)
    half = max(abs(stats.minimumValue), abs(stats.maximumValue)) or 1.0
    renderer = layer.renderer()
    ramp = renderer.shader().rasterShaderFunction()
    items = ramp.colorRampItemList()
    for item in items:
        item.value *= half
        item.label = f"{item.value:.2f}"
    ramp.setColorRampItemList(items)
    ramp.setMinimumValue(-half)
    ramp.setMaximumValue(half)
    renderer.setClassificationMin(-half)
    renderer.setClassificationMax(half)


def styled_layer(path: str, name: str, style: str, provenance: dict) -> QgsRasterLayer:
    layer = QgsRasterLayer(path, name, "gdal")
    if not layer.isValid():
        raise InsarMlError(f"The output {path} could not be opened as a raster.")
    message, ok = layer.loadNamedStyle(style_path(style))
    if not ok:
        raise InsarMlError(f"The style {style} could not be applied: {message}")
    if style == UNWRAPPED:
        stretch_symmetric(layer)
    layer.setCustomProperty("insarml/style", style)
    for key, value in provenance.items():
        layer.setCustomProperty(f"insarml/{key}", value if isinstance(value, str) else json.dumps(value, default=str))
    return layer


def add_styled_layers(group_name: str, outputs: list[tuple[str, str, str]], provenance: dict,
                      project: QgsProject | None = None) -> list[QgsRasterLayer]:
    """Add ``(path, layer name, style)`` outputs at the top of a group named after the input."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.findGroup(group_name) or root.insertGroup(0, group_name)
    layers = []
    for path, name, style in outputs:
        layer = styled_layer(path, name, style, provenance)
        project.addMapLayer(layer, False)
        group.addLayer(layer)
        layers.append(layer)
    return layers
