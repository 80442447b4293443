"""Matplotlib figures embedded in the dialogs: a live loss curve and a preview grid of samples."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class Canvas(FigureCanvasQTAgg):
    """A figure canvas never laid out at zero size (tight_layout fails on an empty area)."""

    def __init__(self, height: float):
        super().__init__(Figure(figsize=(5, height), tight_layout=True))
        self.setMinimumSize(360, int(height * 80))


class LossPlot(Canvas):
    """Training and validation loss against the step, redrawn as records arrive."""

    def __init__(self):
        super().__init__(2.6)
        self.axes = self.figure.add_subplot(111)
        self.train: list[tuple[int, float]] = []
        self.validation: list[tuple[int, float]] = []
        self.redraw()

    def clear(self) -> None:
        self.train.clear()
        self.validation.clear()
        self.redraw()

    def add(self, record: dict) -> None:
        self.train.append((record["step"], record["loss"]))
        if "val_loss" in record:
            self.validation.append((record["step"], record["val_loss"]))

    def redraw(self) -> None:
        self.axes.clear()
        for points, label in ((self.train, "training"), (self.validation, "validation")):
            if points:
                steps, values = zip(*points)
                self.axes.plot(steps, values, "-" if label == "training" else "o-", label=label)
        self.axes.set_xlabel("step")
        self.axes.set_ylabel("loss")
        if self.train and min(v for _, v in self.train) > 0:
            self.axes.set_yscale("log")
        if self.train:
            self.axes.legend(loc="upper right")
        self.draw_idle()


class PreviewGrid(Canvas):
    """The first generated samples, each in its own symmetric colour scale."""

    def __init__(self):
        super().__init__(2.8)

    def show_samples(self, images: list[np.ndarray], titles: list[str]) -> None:
        self.figure.clear()
        columns = min(4, len(images)) or 1
        rows = math.ceil(len(images) / columns)
        for index, (image, title) in enumerate(zip(images, titles)):
            axes = self.figure.add_subplot(rows, columns, index + 1)
            half = float(np.nanmax(np.abs(image))) or 1.0
            axes.imshow(image, cmap="RdBu_r", vmin=-half, vmax=half)
            axes.set_title(title, fontsize=7)
            axes.set_axis_off()
        self.draw_idle()
