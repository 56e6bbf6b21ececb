"""The callback that measures and plots the latent space during training (the measures
themselves live in ``ddsp_morph.latent``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from ddsp_morph.latent.summary import encode_dataset, latent_stats
from ddsp_morph.plots import plot_latent


class LatentMonitor(L.Callback):
    """Every ``every_n_epochs`` validation epochs: latent statistics logged, a PNG saved under
    ``<run>/latent/`` and sent to the logger when it takes images."""

    def __init__(self, out_dir: Path, every_n_epochs: int = 4) -> None:
        self.out_dir, self.every = Path(out_dir), max(1, int(every_n_epochs))
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        # Validation ends an epoch: epochs completed = current_epoch + 1.
        if (trainer.current_epoch + 1) % self.every:
            return
        self.write(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.write(trainer, pl_module, final=True)  # the map of the final weights

    def write(self, trainer: L.Trainer, pl_module, final: bool = False) -> None:
        model = pl_module.model
        dataset = trainer.datamodule.datasets["valid"]
        if model.encoder is None or not len(dataset):
            return
        enc = encode_dataset(model, dataset)
        stats = latent_stats(enc)
        if not final:  # self.log is not allowed once training has ended
            for k, v in stats.items():
                pl_module.log(f"latent/{k}", float(v), rank_zero_only=True)
        path = self.out_dir / f"latent_step{trainer.global_step:06d}.png"
        title = f"step {trainer.global_step}: " + ", ".join(
            f"{k} {v:.3g}" for k, v in stats.items()
        )
        plot_latent(enc, pl_module.instruments or trainer.datamodule.instruments, path, title)
        self.written.append(path)
        if trainer.logger and hasattr(trainer.logger, "log_image"):
            trainer.logger.log_image("latent/map", [str(path)], step=trainer.global_step)
