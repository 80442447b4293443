"""Open every InSAR ML dialog in a real window and save a PNG of each to docs/screenshots/.

Run through ``make screenshots`` (under Xvfb when it is installed, else Qt's offscreen platform,
which renders the same widgets).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.append("/usr/share/qgis/python/plugins")  # the Processing plugin, as QGIS puts it


class Iface:
    """The little of QgisInterface the dialogs use: a main window with a status bar and a canvas."""

    def __init__(self):
        from qgis.gui import QgsMapCanvas
        from qgis.PyQt.QtWidgets import QMainWindow

        self.window = QMainWindow()
        self.canvas = QgsMapCanvas(self.window)
        self.window.setCentralWidget(self.canvas)

    def mainWindow(self):  # noqa: N802 (QGIS API names)
        return self.window

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def addToolBar(self, name: str):  # noqa: N802
        return self.window.addToolBar(name)

    def addPluginToRasterMenu(self, name: str, action) -> None:  # noqa: N802
        self.window.menuBar().addAction(action)

    def removePluginRasterMenu(self, name: str, action) -> None:  # noqa: N802
        self.window.menuBar().removeAction(action)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    import qgis_insar_ml

    plugin = qgis_insar_ml.classFactory(Iface())
    plugin.initGui()
    for key, _, _, factory in plugin.tools():
        if factory is None:
            continue
        dialog = plugin.open_dialog(key, factory)
        dialog.adjustSize()
        for _ in range(20):
            app.processEvents()
        dialog.grab().save(str(out / f"{key}.png"))
        print(out / f"{key}.png")
        dialog.close()
    plugin.unload()
    app.exitQgis()


if __name__ == "__main__":
    main()
