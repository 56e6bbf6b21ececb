"""Exponential moving averages of the weights while training (``trainer.weight_average``).

At a constant learning rate the last hundred steps move the weights enough to change a morph
(experiments/ex2_latent/REPORT.md: two stops of one trajectory, 125 steps apart, differ by 0.11
in P(B) at the end of a path). An average over those steps is what the run reports and exports.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch

from ddsp_morph.errors import ConfigError
from ddsp_morph.runs import AVERAGE_KEY

CHECKPOINT_KEY = AVERAGE_KEY


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based): min(decay, (1 + n) / (10 + n)), so the
    first updates follow the weights closely and the random start fades within tens of steps."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def decay_key(decay: float) -> str:
    return f"{decay:g}"


class WeightAverage(L.Callback):
    """EMAs of the LightningModule's parameters, updated after every optimizer step.

    The first decay's average is the model's: it is swapped in for validation (so val/loss and
    the best checkpoint are the average's), written as every checkpoint's ``state_dict`` with the
    latent summary of those weights (so evaluation, the morph CLI and export read it unchanged),
    and copied into the model when training ends. The weights being trained are kept beside it
    in the checkpoint (``weight_average.current``), where a resumed run continues from them.
    Further decays (``also``) are only kept, in the checkpoint, to be measured against.

    Place it first among the callbacks: the latent map written at the end of a validation epoch
    and the final one are then of the average.
    """

    def __init__(self, decay: float, also: Sequence[float] = ()) -> None:
        decays = [float(decay), *(float(d) for d in also)]
        for d in decays:
            if not 0.0 < d < 1.0:
                raise ConfigError(
                    f"config trainer.weight_average: a decay must be in (0, 1), got {d}"
                )
        if len({decay_key(d) for d in decays}) != len(decays):
            raise ConfigError(f"config trainer.weight_average: decays repeat: {decays}")
        self.decays = decays
        self.updates = 0
        self._last_step = 0
        self.shadows: dict[str, list[torch.Tensor]] = {}
        self._swapped = False  # the module holds the first average (during validation)
        self.current_at_end: list[torch.Tensor] | None = None  # the trained weights, after the end

    @staticmethod
    def _params(pl_module: L.LightningModule) -> list[torch.Tensor]:
        return [p.detach() for p in pl_module.parameters()]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and not self.shadows:
            params = self._params(pl_module)
            self.shadows = {decay_key(d): [p.clone() for p in params] for d in self.decays}

    def update(self, pl_module: L.LightningModule) -> None:
        """One EMA step of every average towards the module's weights now."""
        params = self._params(pl_module)
        for d in self.decays:
            weight = 1.0 - warmed_decay(d, self.updates)
            shadow = self.shadows[decay_key(d)]
            with torch.no_grad():
                torch._foreach_lerp_(
                    shadow, [p.to(s.dtype) for p, s in zip(params, shadow, strict=True)], weight
                )
        self.updates += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # a skipped (non-finite) step leaves global_step where it was: nothing to average
        if trainer.global_step > self._last_step:
            self.update(pl_module)
            self._last_step = trainer.global_step

    def _swap(self, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for p, s in zip(
                pl_module.parameters(), self.shadows[decay_key(self.decays[0])], strict=True
            ):
                tmp = p.detach().clone()
                p.copy_(s)
                s.copy_(tmp)
        self._swapped = not self._swapped

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.shadows and not self._swapped and self.current_at_end is None:
            self._swap(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        # after the epoch-end hooks (the latent map), before ModelCheckpoint saves
        if self._swapped:
            self._swap(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._swapped:
            self._swap(pl_module)
        self.current_at_end = [p.clone() for p in self._params(pl_module)]
        with torch.no_grad():
            torch._foreach_copy_(self._params(pl_module), self.shadows[decay_key(self.decays[0])])

    def _state_with(self, pl_module, tensors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The module's state dict with its parameters replaced by ``tensors``."""
        names = [n for n, _ in pl_module.named_parameters()]
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        state.update({n: t.detach().clone() for n, t in zip(names, tensors, strict=True)})
        return state

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if not self.shadows:
            return
        first = self.shadows[decay_key(self.decays[0])]
        if self.current_at_end is not None:
            current = self.current_at_end
        elif self._swapped:
            current = first  # mid-validation the shadow holds the trained weights
        else:
            current = self._params(pl_module)
        average = (
            self._params(pl_module) if self.current_at_end is not None or self._swapped else first
        )
        # the latent summary stored with the checkpoint must be that of the weights it stores
        if getattr(pl_module.model, "encoder", None) is not None and hasattr(
            pl_module, "refresh_latent_summary"
        ):
            if not self._swapped and self.current_at_end is None:
                self._swap(pl_module)
                try:
                    pl_module.refresh_latent_summary()
                finally:
                    self._swap(pl_module)
            else:
                pl_module.refresh_latent_summary()
        checkpoint["state_dict"] = self._state_with(pl_module, average)
        checkpoint[CHECKPOINT_KEY] = {
            "decays": list(self.decays),
            "updates": int(self.updates),
            "current": self._state_with(pl_module, current),
            "also": {
                decay_key(d): self._state_with(pl_module, self.shadows[decay_key(d)])
                for d in self.decays[1:]
            },
        }

    def state_dict(self) -> dict:
        return {"updates": self.updates, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        self.updates = int(state_dict["updates"])
        self._last_step = int(state_dict["last_step"])

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        """Resume: the module gets the trained weights back (Lightning loaded the average from
        ``state_dict``), each average its own. A checkpoint written without averaging starts the
        averages at its weights."""
        saved = checkpoint.get(CHECKPOINT_KEY)
        names = [n for n, _ in pl_module.named_parameters()]
        start = [t.detach().clone() for t in self._params(pl_module)]
        if saved is None:
            self.shadows = {decay_key(d): [t.clone() for t in start] for d in self.decays}
            return
        self.shadows = {decay_key(self.decays[0]): start}
        for d in self.decays[1:]:
            state = saved["also"].get(decay_key(d))
            self.shadows[decay_key(d)] = (
                [state[n].clone() for n in names]
                if state is not None
                else [t.clone() for t in start]
            )
        pl_module.load_state_dict(saved["current"])  # the counts come back in load_state_dict
