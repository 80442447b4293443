"""Models: the cards of the shipped and user models, and a safe import into the user model folder."""
from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import InsarMlError
from . import settings
from .model_cards import import_model, input_description, list_models, metrics_description, training_description

COLUMNS = ("model", "kind", "input", "size [MB]", "quality", "training data", "folder")


class ModelsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("InSAR ML — Models")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.folder_label = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        action = QDialogButtonBox.ButtonRole.ActionRole
        buttons.addButton("Import model…", action).clicked.connect(self.choose_import)
        buttons.addButton("User model folder…", action).clicked.connect(self.choose_folder)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        for widget in (self.table, self.folder_label, self.message, buttons):
            layout.addWidget(widget)
        self.resize(900, 360)
        self.reload()

    def reload(self) -> None:
        entries = list_models()
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            values = (entry.name, entry.kind, input_description(entry.card),
                      f"{entry.weights.stat().st_size / 1e6:.1f}", metrics_description(entry.card),
                      training_description(entry.card), "shipped" if entry.shipped else str(entry.weights.parent))
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.folder_label.setText(f"User model folder: {settings.user_model_folder()}")

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a model", settings.get("last_model_folder", ""),
            "Model files (*.safetensors *.pt *.pth);;Models (*.safetensors);;PDM paper checkpoints (*.pt *.pth)")
        if path:
            settings.put("last_model_folder", str(Path(path).parent))
            self.import_file(Path(path))

    def import_file(self, path: Path) -> bool:
        """Validate with the safe loaders and copy into the user model folder; say what happened."""
        try:
            target = import_model(path)
        except InsarMlError as exc:
            self.show_message(f"Not imported: {exc}", error=True)
            return False
        self.show_message(f"Imported {path.name} into {target.parent} as {target.stem}.")
        self.reload()
        return True

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "User model folder", str(settings.user_model_folder()))
        if folder:
            settings.put("model_folder", folder)
            self.reload()

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00020;" if error else "")
