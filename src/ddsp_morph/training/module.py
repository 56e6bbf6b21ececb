"""The LightningModule wrapping a DDSP autoencoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch

from ddsp_morph.dsp.spectral import multiscale_spectral_loss
from ddsp_morph.models.autoencoder import DDSPAutoencoder


class DDSPModule(L.LightningModule):
    """Trains a DDSPAutoencoder on the multi-scale spectral loss.

    Args:
        model: the autoencoder.
        optimizer: a partial taking the parameters (Hydra ``_partial_``).
        lr_decay: multiplicative learning-rate decay per step (1.0: constant).
    """

    def __init__(
        self,
        model: DDSPAutoencoder,
        *,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr_decay: float = 1.0,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64),
        overlap: float = 0.75,
        linear_weight: float = 1.0,
        log_weight: float = 1.0,
        instruments: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.instruments = list(instruments)
        self.optimizer_factory, self.lr_decay = optimizer, lr_decay
        self.nonfinite_steps = 0
        self.train_history: list[float] = []
        self.val_history: list[tuple[int, float]] = []
        self._val_sum, self._val_count = 0.0, 0
        self.loss_kwargs = dict(
            fft_sizes=tuple(fft_sizes),
            overlap=overlap,
            linear_weight=linear_weight,
            log_weight=log_weight,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model(batch)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return multiscale_spectral_loss(pred, target, **self.loss_kwargs)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        out = self.model(batch)
        loss = self.loss(out["audio"], batch["audio"])
        value = float(loss.detach())
        self.train_history.append(value)
        if not torch.isfinite(loss):
            # Returning None skips backward and the optimizer step: the weights stay clean.
            self._count_nonfinite()
            return None
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def _count_nonfinite(self) -> None:
        self.nonfinite_steps += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), reduce_fx="max")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        if not torch.isfinite(norm):
            # A non-finite gradient: drop it, so that Adam leaves every weight as it was.
            for p in self.parameters():
                p.grad = None
            self._count_nonfinite()
            return
        self.log("train/grad_norm", norm)
        self.log("train/lr", optimizer.param_groups[0]["lr"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        loss = self.loss(out["audio"], batch["audio"])
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        n = batch["audio"].shape[0]
        self._val_sum, self._val_count = self._val_sum + float(loss) * n, self._val_count + n
        return loss

    def on_validation_epoch_end(self) -> None:
        if self._val_count and not self.trainer.sanity_checking:
            self.val_history.append((int(self.global_step), self._val_sum / self._val_count))
        self._val_sum, self._val_count = 0.0, 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain types only: the checkpoint must load with torch.load(weights_only=True).
        checkpoint["ddsp_morph"] = {"instruments": list(self.instruments)}

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.parameters())
        if self.lr_decay >= 1.0:
            return opt
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
