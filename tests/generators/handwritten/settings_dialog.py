"""The settings dialog, loaded from settings.ui at run time (no pyuic5 step)."""

from pathlib import Path

from PyQt5 import QtWidgets, uic

FORM = Path(__file__).with_name("settings.ui")


class SettingsDialog(QtWidgets.QDialog):
    def __init__(self, parent=None, name: str = "", autosave: bool = True):
        super().__init__(parent)
        uic.loadUi(FORM, self)
        self.nameEdit.setText(name)
        self.autosaveCheck.setChecked(autosave)

    def values(self) -> dict:
        return {"name": self.nameEdit.text(), "autosave": self.autosaveCheck.isChecked()}
