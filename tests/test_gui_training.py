"""The training dialog: a tiny PDM trains in a QThread with a live loss curve; cancel checkpoints; resume."""
from __future__ import annotations

import pytest

from test_gui import TIMEOUT_MS, own_settings  # noqa: F401 (autouse fixture)


@pytest.fixture
def dialog(qtbot, qgis_iface, tmp_path):
    from qgis_insar_ml.gui.train_dialog import TrainDialog

    dialog = TrainDialog(qgis_iface, "pdm")
    qtbot.addWidget(dialog)
    dialog.dataset.setCurrentIndex(dialog.dataset.findData("deformation"))
    dialog.image_size.setValue(16)
    dialog.batch_size.setValue(4)
    dialog.channel_mult.setText("1,2")
    dialog.attention.setText("")
    dialog.model_channels.setValue(32)
    dialog.diffusion_steps.setValue(20)
    dialog.validate_every.setValue(2)
    dialog.checkpoint_every.setValue(100)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.output.setFilePath(str(tmp_path / "tiny.safetensors"))
    yield dialog
    dialog.shutdown()


def test_pdm_training_shows_a_loss_curve_and_saves_the_model(qtbot, dialog, tmp_path):
    dialog.steps.setValue(4)
    dialog.run_button.click()
    assert dialog.worker is not None and dialog.status_button.isVisibleTo(dialog.status_button.parentWidget())
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    assert "Model saved" in dialog.message.text(), dialog.message.text()
    assert (tmp_path / "tiny.safetensors").is_file() and (tmp_path / "tiny.json").is_file()
    assert [step for step, _ in dialog.plot.train] == [1, 2, 3, 4]
    assert [step for step, _ in dialog.plot.validation] == [2, 4]
    assert len(dialog.plot.axes.lines) == 2 and len(dialog.plot.axes.lines[0].get_xdata()) >= 2
    assert dialog.stats.text().startswith("step 4/4") and "samples/s" in dialog.stats.text()
    assert not dialog.status_button.isVisibleTo(dialog.status_button.parentWidget())


def test_cancel_saves_a_checkpoint_and_resume_continues(qtbot, dialog, tmp_path):
    dialog.steps.setValue(400)
    dialog.run_button.click()
    qtbot.waitUntil(lambda: len(dialog.plot.train) >= 2 or dialog.worker is None, timeout=TIMEOUT_MS)
    dialog.close()  # training goes on with the window closed; the status-bar button reopens it
    assert dialog.worker is not None
    dialog.status_button.click()
    assert dialog.isVisible()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    assert "checkpoint saved" in dialog.message.text()
    assert (tmp_path / "tiny.ckpt.pt").is_file() and not (tmp_path / "tiny.safetensors").exists()
    stopped = dialog.plot.train[-1][0]
    assert dialog.resume.isChecked()  # ticked for the user after a cancel
    dialog.steps.setValue(stopped + 2)
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    assert "Model saved" in dialog.message.text(), dialog.message.text()
    steps = [step for step, _ in dialog.plot.train]
    assert steps[-3:] == [stopped, stopped + 1, stopped + 2]  # continued, not restarted


def test_bad_settings_give_a_message(qtbot, dialog):
    dialog.channel_mult.setText("1,x")
    dialog.run_button.click()
    assert dialog.worker is None and "comma-separated integers" in dialog.message.text()
    dialog.channel_mult.setText("1,2")
    dialog.dataset.setCurrentIndex(dialog.dataset.findData("folder"))
    dialog.run_button.click()
    assert dialog.worker is None and "raster folder" in dialog.message.text()


def tiny_deepinsar_dialog(qtbot, qgis_iface, output):
    """The Train DeepInSAR dialog set for 2 phase-only steps on 32-px patches, on the CPU."""
    from qgis_insar_ml.gui.train_dialog import TrainDialog

    dialog = TrainDialog(qgis_iface, "deepinsar")
    qtbot.addWidget(dialog)
    dialog.input_kind.setCurrentIndex(dialog.input_kind.findData(2))
    dialog.steps.setValue(2)
    dialog.batch_size.setValue(2)
    dialog.patch_size.setValue(32)
    dialog.validate_every.setValue(1)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.output.setFilePath(str(output))
    return dialog


def test_deepinsar_training_dialog_trains_on_the_simulator(qtbot, qgis_iface, tmp_path):
    dialog = tiny_deepinsar_dialog(qtbot, qgis_iface, tmp_path / "dis")
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    dialog.shutdown()
    assert "Model saved" in dialog.message.text(), dialog.message.text()
    assert (tmp_path / "dis.safetensors").is_file()
    assert [step for step, _ in dialog.plot.validation] == [1, 2]


def test_deepinsar_training_dialog_teacher_student_mode(qtbot, qgis_iface, tmp_path):
    import json

    import numpy as np

    from conftest import noisy_fringes, write_raster
    from qgis_insar_ml.gui.train_dialog import TEACHER

    clean, noisy = noisy_fringes(64, 64, sigma=0.6, seed=3)
    ifg = write_raster(tmp_path / "ifg.tif", noisy)
    reference = write_raster(tmp_path / "ref.tif", clean.astype(np.float32))
    coherence = write_raster(tmp_path / "coh.tif", np.full((64, 64), 0.8, dtype=np.float32))
    dialog = tiny_deepinsar_dialog(qtbot, qgis_iface, tmp_path / "teacher.safetensors")
    dialog.dataset.setCurrentIndex(dialog.dataset.findData(TEACHER))
    dialog.teacher["interferogram"].set_path(str(ifg))
    dialog.run_button.click()
    assert dialog.worker is None and "Teacher: reference phase, Teacher: reference coherence" in dialog.message.text()
    dialog.teacher["reference_phase"].set_path(str(reference))
    dialog.teacher["reference_coherence"].set_path(str(coherence))
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    dialog.shutdown()
    assert "Model saved" in dialog.message.text(), dialog.message.text()
    card = json.loads((tmp_path / "teacher.json").read_text())
    assert card["training"]["mode"] == "teacher-student" and card["training"]["steps"] == 2
