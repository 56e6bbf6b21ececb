"""Checkpoint callbacks that keep a run whole where it lies."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

log = logging.getLogger(__name__)


class RunCheckpoint(L.pytorch.callbacks.ModelCheckpoint):
    """A ModelCheckpoint whose stored paths are relative to its folder, so that a run that was
    moved or copied resumes and finishes in its new place: its best checkpoint is its own
    (never the original run's, which it would otherwise overwrite or delete), and a best
    checkpoint that has gone is dropped with a warning instead of failing at the end. Checkpoints
    written before (absolute paths) are read the same way."""

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's own key, so that runs written with it resume with their state
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["dirpath"] = "."
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[key] = self._relative(state.get(key) or "")
        state["best_k_models"] = {
            self._relative(k): v for k, v in (state.get("best_k_models") or {}).items()
        }
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        stored = state_dict.get("dirpath")
        old = None if stored in (None, ".") else Path(stored)
        state = dict(state_dict, dirpath=self.dirpath)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[key] = self._here(state.get(key) or "", old)
        state["best_k_models"] = {
            self._here(k, old): v for k, v in (state.get("best_k_models") or {}).items()
        }
        super().load_state_dict(state)
        for key in ("best_model_path", "kth_best_model_path"):
            path = getattr(self, key)
            if path and not Path(path).exists():
                log.warning(
                    "%s: this run's best checkpoint is gone; the next best replaces it", path
                )
                setattr(self, key, "")
        self.best_k_models = {k: v for k, v in self.best_k_models.items() if Path(k).exists()}
        if not self.best_model_path:
            self.best_model_score = None
            self.kth_best_model_path = ""
            self.kth_value = torch.tensor(float("inf") if self.mode == "min" else float("-inf"))

    def _relative(self, path: str) -> str:
        if not path:
            return ""
        p = Path(path)
        return p.name if self.dirpath and p.parent == Path(self.dirpath) else str(p)

    def _here(self, path: str, old: Path | None) -> str:
        """A stored path -> its place in this run: a bare name, or a path in the folder the run
        was in when the checkpoint was written, is a file of this run's folder."""
        if not path:
            return ""
        p = Path(path)
        if not p.is_absolute() or (old is not None and p.parent == old):
            return str(Path(self.dirpath) / p.name)
        return str(p)
