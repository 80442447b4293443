"""The QGIS plugin: registers the Processing provider, the toolbar and the Raster ▸ InSAR ML menu."""
from __future__ import annotations

from typing import Callable

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QDialog

from .paths import icon_path
from .processing.provider import InsarMlProvider

MENU = "InSAR ML"


class InsarMlPlugin:
    """initProcessing runs everywhere (qgis_process too); initGui only in the desktop."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: InsarMlProvider | None = None
        self.toolbar = None
        self.actions: list[QAction] = []
        self.dialogs: dict[str, QDialog] = {}  # one per tool, kept: a training dialog outlives its window

    def initProcessing(self) -> None:  # noqa: N802
        if self.provider is None:
            self.provider = InsarMlProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def tools(self) -> list[tuple[str, str, str, Callable[[], QDialog] | None]]:
        """(key, menu text, icon, dialog factory); no factory = the standard Processing dialog of ``key``."""
        from .gui import factories

        return factories.tools(self.iface)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        self.toolbar = self.iface.addToolBar(MENU)
        self.toolbar.setObjectName("InsarMlToolbar")
        for key, text, icon, factory in self.tools():
            action = QAction(QIcon(icon_path(icon)), text, self.iface.mainWindow())
            action.setObjectName(f"insarml_{key}")
            action.triggered.connect(lambda _=False, k=key, f=factory: self.open_dialog(k, f))
            self.toolbar.addAction(action)
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    def open_dialog(self, key: str, factory: Callable[[], QDialog] | None) -> QDialog | None:
        """Show the tool's dialog (made once, then reused), or the algorithm's Processing dialog."""
        if factory is None:
            import processing  # noqa: QGS111 (the Processing plugin: qgis.processing lacks the dialogs in 3.22)

            processing.execAlgorithmDialog(f"insarml:{key}")
            return None
        if key not in self.dialogs:
            self.dialogs[key] = factory()
        dialog = self.dialogs[key]
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def unload(self) -> None:
        for dialog in self.dialogs.values():
            getattr(dialog, "shutdown", dialog.close)()  # tool dialogs also stop their background work
            dialog.deleteLater()
        self.dialogs.clear()
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
        self.actions.clear()
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
