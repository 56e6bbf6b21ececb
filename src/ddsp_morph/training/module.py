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
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory, self.lr_decay = optimizer, lr_decay
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

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        loss = self.loss(out["audio"], batch["audio"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        loss = self.loss(out["audio"], batch["audio"])
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.parameters())
        if self.lr_decay >= 1.0:
            return opt
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
