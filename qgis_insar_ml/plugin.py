"""The QGIS plugin: registers the Processing provider and the toolbar/menu."""
from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .paths import icon_path
from .processing.provider import ALGORITHMS, InsarMlProvider

MENU = "InSAR ML"


class InsarMlPlugin:
    """initProcessing runs everywhere (qgis_process too); initGui only in the desktop."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: InsarMlProvider | None = None
        self.toolbar = None
        self.actions: list[QAction] = []

    def initProcessing(self) -> None:  # noqa: N802
        if self.provider is None:
            self.provider = InsarMlProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        self.toolbar = self.iface.addToolBar(MENU)
        self.toolbar.setObjectName("InsarMlToolbar")
        for algorithm_class in ALGORITHMS:
            algorithm = algorithm_class()
            action = QAction(QIcon(icon_path("insarml.svg")), algorithm.display_name, self.iface.mainWindow())
            action.setObjectName(f"insarml_{algorithm.algorithm_id}")
            action.triggered.connect(lambda _=False, alg_id=algorithm.algorithm_id: self.open_dialog(alg_id))
            self.toolbar.addAction(action)
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    @staticmethod
    def open_dialog(algorithm_id: str) -> None:
        """Open the algorithm's standard Processing dialog."""
        import processing  # only in the desktop: the Processing plugin's module

        processing.execAlgorithmDialog(f"insarml:{algorithm_id}")

    def unload(self) -> None:
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
