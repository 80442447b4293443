"""The toolbar and menu entries, in order, with the dialog each opens (imported only when opened)."""
from __future__ import annotations

from typing import Callable

from qgis.PyQt.QtWidgets import QDialog


def tools(iface) -> list[tuple[str, str, str, Callable[[], QDialog] | None]]:
    """(key, text, icon file, factory); a None factory opens the Processing dialog of insarml:<key>."""

    def filter_dialog(method: str) -> Callable[[], QDialog]:
        def make() -> QDialog:
            from .filter_dialog import FilterDialog

            return FilterDialog(iface, method)
        return make

    def simulate() -> QDialog:
        from .simulate_dialog import SimulateDialog

        return SimulateDialog(iface)

    def generate() -> QDialog:
        from .generate_dialog import GenerateDialog

        return GenerateDialog(iface)

    def train(kind: str) -> Callable[[], QDialog]:
        def make() -> QDialog:
            from .train_dialog import TrainDialog

            return TrainDialog(iface, kind)
        return make

    def models() -> QDialog:
        from .models_dialog import ModelsDialog

        return ModelsDialog(iface.mainWindow())

    def diagnostics() -> QDialog:
        from .diagnostics import DiagnosticsDialog

        return DiagnosticsDialog(iface.mainWindow())

    return [("filter", "Filter & coherence (DeepInSAR)", "filter.svg", filter_dialog("deepinsar")),
            ("classical", "Classical filters", "classical.svg", filter_dialog("boxcar")),
            ("generate", "Generate scenes (PDM)", "generate.svg", generate),
            ("pdm_superresolve", "Super-resolve", "superres.svg", None),
            ("simulate", "Simulate pair", "simulate.svg", simulate),
            ("train_deepinsar", "Train DeepInSAR", "train_deepinsar.svg", train("deepinsar")),
            ("train_pdm", "Train PDM", "train_pdm.svg", train("pdm")),
            ("models", "Models", "models.svg", models),
            ("diagnostics", "Diagnostics", "diagnostics.svg", diagnostics)]
