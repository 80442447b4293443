"""QGIS 4 runs on Qt6 / PyQt6, which no Debian QGIS ships: static checks keep the plugin's Qt code
valid for both PyQt5 (QGIS 3) and PyQt6 (QGIS 4), as metadata.txt's supportsQt6=True promises."""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "qgis_insar_ml"
PYQT6 = REPO / ".venv" / "pyqt6"  # installed apart by `make setup`: QGIS itself runs on PyQt5
# flake8-qgis: QGS1xx (imports through qgis.PyQt and qgis, exec, processing) and QGS4xx (Qt6 removals).
# QGS105 (iface as an argument) is left out: the plugin gets iface from QGIS's classFactory and hands it
# to its dialogs so the tests can give them pytest-qgis's iface. QGS2xx are experimental return-value hints.
FLAKE8_RULES = ["--select=QGS1,QGS4", "--extend-ignore=QGS105"]
# What PyQt6 removed, by the spelling that still works on PyQt5 but not on PyQt6.
QT5_ONLY = {
    r"\bexec_\(": "exec_() is gone in PyQt6: call exec()",
    r"\bQRegExp\b": "QRegExp is gone in Qt6: use QRegularExpression",
    r"\bQVariant\b": "QVariant types are gone in PyQt6: use QMetaType.Type or None (QGIS's NULL)",
    r"\bPyQt5\b": "import Qt through qgis.PyQt, which is PyQt5 or PyQt6",
    r"\bQDesktopWidget\b": "QDesktopWidget is gone in Qt6: use QScreen",
    r"\bqApp\b": "qApp is gone in PyQt6: use QApplication.instance()",
}
# QGIS's qgis.PyQt.QtWidgets keeps exporting these on Qt6, where they live in QtGui.
MOVED_TO_QTGUI = {"QAction", "QActionGroup", "QShortcut"}


def plugin_sources() -> list[Path]:
    return sorted(PLUGIN.rglob("*.py"))


def qt_references() -> list[tuple[str, int, str, str]]:
    """(file, line, Qt module, dotted name) for each name imported from qgis.PyQt and each
    attribute chain on one, like ``Qt.AlignmentFlag.AlignLeft``."""
    references = []
    for path in plugin_sources():
        tree = ast.parse(path.read_text(), str(path))
        imported: dict[str, tuple[str, str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qgis.PyQt."):
                module = node.module.removeprefix("qgis.PyQt.")
                for alias in node.names:
                    imported[alias.asname or alias.name] = (module, alias.name)
                    references.append((str(path.relative_to(REPO)), node.lineno, module, alias.name))
        chained = set()  # inner nodes of a longer chain, already counted
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or id(node) in chained:
                continue
            parts, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chained.add(id(inner))
                parts.insert(0, inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in imported:
                module, name = imported[inner.id]
                references.append((str(path.relative_to(REPO)), node.lineno, module, ".".join([name, *parts])))
    return references


def test_flake8_qgis_finds_no_qt6_or_import_problem():
    done = subprocess.run([sys.executable, "-m", "flake8", *FLAKE8_RULES, str(PLUGIN)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_qt5_only_spellings():
    found = [f"{path.relative_to(REPO)}:{number}: {why}: {line.strip()}"
             for path in plugin_sources()
             for number, line in enumerate(path.read_text().splitlines(), 1)
             for pattern, why in QT5_ONLY.items() if re.search(pattern, line)]
    assert not found, "\n".join(found)


def test_qt_enums_are_used_by_their_scoped_names():
    """PyQt6 knows ``Qt.AlignmentFlag.AlignLeft`` only; PyQt5 5.15 knows both spellings."""
    from qgis.PyQt.QtCore import Qt

    enum_metaclass = type(Qt.AlignmentFlag)  # sip's, for every Qt enum
    unscoped = []
    for file, line, module, dotted in qt_references():
        owner = importlib.import_module(f"qgis.PyQt.{module}")
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            value = getattr(owner, part, None)
            enum_type = type(value)
            if isinstance(enum_type, enum_metaclass) and owner is not enum_type:
                scoped = ".".join([*parts[:depth], enum_type.__name__, *parts[depth:]])
                unscoped.append(f"{file}:{line}: {dotted} -> {scoped}")
                break
            owner = value
    assert not unscoped, "\n".join(unscoped)


def test_every_qt_name_the_plugin_uses_exists_in_pyqt6(tmp_path):
    """Resolve every Qt class, enum and class attribute the plugin names against the real PyQt6."""
    assert (PYQT6 / "PyQt6").is_dir(), f"PyQt6 is missing from {PYQT6}: run `make setup`"
    references = [(file, line, "QtGui" if dotted.split(".")[0] in MOVED_TO_QTGUI else module, dotted)
                  for file, line, module, dotted in qt_references()]
    assert len(references) > 50  # the dialogs, the toolbar and the training thread
    (tmp_path / "references.json").write_text(json.dumps(references))
    resolve = (
        "import importlib, json, sys\n"
        "missing = []\n"
        "for file, line, module, dotted in json.load(open(sys.argv[1])):\n"
        "    owner = importlib.import_module('PyQt6.' + module)\n"
        "    for part in dotted.split('.'):\n"
        "        if not hasattr(owner, part):\n"
        "            missing.append(f'{file}:{line}: PyQt6.{module} has no {dotted}')\n"
        "            break\n"
        "        owner = getattr(owner, part)\n"
        "print('\\n'.join(missing))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PYQT6)}
    done = subprocess.run([sys.executable, "-s", "-c", resolve, str(tmp_path / "references.json")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
