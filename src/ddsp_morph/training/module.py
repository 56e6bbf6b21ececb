"""The LightningModule wrapping a DDSP autoencoder."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from ddsp_morph.data.datamodule import audio_mask
from ddsp_morph.data.io import save_csv
from ddsp_morph.dsp.spectral import (
    band_fluctuation,
    fluctuation_loss,
    multiscale_spectral_loss,
)
from ddsp_morph.models.autoencoder import DDSPAutoencoder
from ddsp_morph.models.decoder import held_over_frames
from ddsp_morph.models.encoder import beta_at, kl_loss, kl_per_dim
from ddsp_morph.training.critic import InstrumentCritic

# The fluctuation term's bands (a 32 ms Hann STFT, 8 ms hop, 40 mel bands from 30 Hz).
FLUCTUATION_FFT, FLUCTUATION_BANDS = 512, 40


def next_clip(z: torch.Tensor) -> torch.Tensor:
    """For each clip of the batch (rows of ``z``), the index of the clip whose z the path and
    conversion terms play it with: the previous row, the first taking the last."""
    return torch.roll(torch.arange(z.shape[0], device=z.device), 1)


class DDSPModule(L.LightningModule):
    """Trains a DDSPAutoencoder on the multi-scale spectral loss.

    Args:
        model: the autoencoder.
        optimizer: a partial taking the parameters (Hydra ``_partial_``).
        lr_decay: multiplicative learning-rate decay per step (1.0: constant).
        lr_cooldown: the last fraction of the run over which the learning rate falls linearly
            to 0 (0: none); the run's end is ``max_steps`` or ``budget_minutes`` of training,
            whichever comes first.
        budget_minutes: the run's wall-time budget (``trainer.max_minutes``), for the cooldown.
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
        beta: float = 0.0,
        beta_warmup_steps: int = 0,
        free_bits: float = 0.0,
        path_weight: float = 0.0,
        cycle_weight: float = 0.0,
        cycle_class_weight: float = 0.0,
        window_frames: int = 0,
        fluctuation_weight: float = 0.0,
        conversion_fluctuation_weight: float = 0.0,
        conversion_critic_weight: float = 0.0,
        lr_cooldown: float = 0.0,
        budget_minutes: float | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= lr_cooldown <= 1.0:
            raise ValueError(f"lr_cooldown: a fraction of the run in [0, 1], got {lr_cooldown}")
        self.lr_cooldown, self.budget_minutes = float(lr_cooldown), budget_minutes
        self.model = model
        self.instruments = list(instruments)
        self.beta, self.beta_warmup_steps, self.free_bits = beta, beta_warmup_steps, free_bits
        self.path_weight, self.cycle_weight = path_weight, cycle_weight
        self.cycle_class_weight = cycle_class_weight
        self.window_frames = window_frames
        self.fluctuation_weight = fluctuation_weight
        self.conversion_fluctuation_weight = conversion_fluctuation_weight
        self.conversion_critic_weight = conversion_critic_weight
        if (
            fluctuation_weight > 0
            or conversion_fluctuation_weight > 0
            or conversion_critic_weight > 0
        ):
            from ddsp_morph.dsp.filters import mel_filterbank

            basis = mel_filterbank(
                sample_rate=model.synth.sample_rate,
                n_fft=FLUCTUATION_FFT,
                n_mels=FLUCTUATION_BANDS,
                fmin=30.0,
            )
            self.register_buffer(
                "fluctuation_basis", torch.as_tensor(basis, dtype=torch.float32), persistent=False
            )
        # A listener of band statistics trained on real crops; conversions must be heard as
        # their z's instrument (training.critic)
        self.critic: InstrumentCritic | None = None
        if conversion_critic_weight > 0:
            self.critic = InstrumentCritic(
                len(self.instruments), self.fluctuation_basis, hop=FLUCTUATION_FFT // 4
            )
        self.latent_summary: dict | None = None  # centroids + PCA axes, saved with checkpoints
        self.optimizer_factory, self.lr_decay = optimizer, lr_decay
        self.nonfinite_steps = 0
        self._nonfinite_counted = False
        self.train_history: list[float] = []
        self.val_history: list[tuple[int, float]] = []
        # the run's val_history.csv, rewritten at every validation (``train`` sets it): a row
        # validated after the last resume checkpoint survives a kill there
        self.val_log_path: Path | None = None
        self.wall_before = 0.0  # training seconds of the run before this process resumed it
        self._fit_start = time.time()
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

    def objective(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], stage: str
    ) -> torch.Tensor:
        """Spectral loss, plus beta * KL to the prior (the clip's instrument's component for a label
        prior; free bits and warm-up) for a VAE."""
        n = batch["audio"].shape[0]
        pred, target = out["audio"], batch["audio"]
        if "mask" in batch:  # the silence padding a recording's last piece does not count
            m = audio_mask(batch["mask"], target.shape[-1])
            pred, target = pred[..., : m.shape[-1]] * m, target * m
        spectral = self.loss(pred, target)
        if self.fluctuation_weight > 0:
            fluct = fluctuation_loss(pred, target, self.fluctuation_basis, hop=FLUCTUATION_FFT // 4)
            self.log(f"{stage}/fluctuation", fluct, batch_size=n)
            if stage == "train":  # val/loss stays spectral + beta * KL, comparable across runs
                spectral = spectral + self.fluctuation_weight * fluct
        cycles = self.cycle_weight > 0 or self.cycle_class_weight > 0
        critic = self.critic is not None and "instrument_id" in batch
        extra = self.path_weight > 0 or cycles or self.conversion_fluctuation_weight > 0 or critic
        if stage == "train" and "z" in out and extra:
            cut = self._window(out["z"].shape[1])
            cycle_on = cycles and "mu" in out
            convert = cycle_on or self.conversion_fluctuation_weight > 0 or critic
            controls = self.window_controls(
                out, batch, cut, path=self.path_weight > 0, conversion=convert
            )
            if self.path_weight > 0:
                path = self.path_evenness(out, batch, cut, controls)
                self.log(f"{stage}/path_evenness", path, batch_size=n)
                spectral = spectral + self.path_weight * path
            converted = self.conversion_render(out, batch, cut, controls) if convert else None
            ramp = beta_at(int(self.global_step), 1.0, self.beta_warmup_steps)
            if cycle_on:
                cycle, found, other = self.timbre_cycle(out, batch, cut, converted, found=True)
                self.log(f"{stage}/timbre_cycle", cycle, batch_size=n)
                spectral = spectral + ramp * self.cycle_weight * cycle
                if self.cycle_class_weight > 0 and "instrument_id" in batch:
                    ce = self.cycle_class(found, batch["instrument_id"][other])
                    self.log(f"{stage}/timbre_cycle_class", ce, batch_size=n)
                    spectral = spectral + ramp * self.cycle_class_weight * ce
            if self.conversion_fluctuation_weight > 0:
                conv = self.conversion_fluctuation(out, batch, cut, converted)
                self.log(f"{stage}/conversion_fluctuation", conv, batch_size=n)
                spectral = spectral + ramp * self.conversion_fluctuation_weight * conv
            if critic:
                learn, judged = self.critic_terms(batch, cut, converted, stage)
                spectral = spectral + learn + ramp * self.conversion_critic_weight * judged
        if "logvar" not in out:
            return spectral
        prior_mean, prior_logvar = self.model.encoder.prior_params(batch.get("instrument_id"))
        kl_dims = kl_per_dim(out["mu"], out["logvar"], prior_mean, prior_logvar)
        beta = beta_at(int(self.global_step), self.beta, self.beta_warmup_steps)
        kl = kl_loss(kl_dims, self.free_bits)
        self.log(f"{stage}/spectral", spectral, batch_size=n)
        self.log(f"{stage}/kl", kl_dims.sum(), batch_size=n)
        if stage == "train":
            self.log("train/beta", beta)
        return spectral + beta * kl

    def _window(self, n_frames: int) -> slice | None:
        """One random window of ``window_frames`` frames for this step's extra decoder passes;
        None: the whole crop (``window_frames`` 0, or not shorter than the crop)."""
        if not 0 < self.window_frames < n_frames:
            return None
        start = int(torch.randint(0, n_frames - self.window_frames + 1, ()))
        return slice(start, start + self.window_frames)

    def window_controls(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        cut: slice | None,
        *,
        path: bool = True,
        conversion: bool = True,
    ) -> dict[str, dict[str, torch.Tensor]]:
        """The synth controls the extra terms need, every clip's f0 and loudness over the window
        ``cut`` played with: its own z ("own", for the path with a window: the GRU starts at the
        window), the next clip's z ("other"), their midpoint ("mid") — the path — and the next
        clip's z held fixed ("conversion"). One decoder pass with those rows stacked: the CPU's
        GRU steps through the window once for all of them, where its cost per frame, not the
        batch, sets the time (REPORT, study 14). Returns name -> controls."""
        z = held_over_frames(out["z"])  # a pooled z: one frame carries it
        if z.shape[1] > 1 and cut is not None:
            z = z[:, cut]
        other = next_clip(z)
        zs: dict[str, torch.Tensor] = {}
        if path:
            if cut is not None:
                zs["own"] = z
            zs["other"], zs["mid"] = z[other], 0.5 * (z + z[other])
        if conversion:
            zs["conversion"] = z[other].detach()
        if not zs:
            return {}
        k = len(zs)
        # the performance's inputs once: the decoder tiles their MLPs' output over the k z
        raw = self.model.decoder(
            {**self._windowed_inputs(batch, cut), "z": torch.cat(list(zs.values()))}
        )
        with torch.autocast(z.device.type, enabled=False):
            controls = self.model.synth.get_controls({n: v.float() for n, v in raw.items()})
        parts = {n: v.chunk(k) for n, v in controls.items()}
        return {name: {n: v[i] for n, v in parts.items()} for i, name in enumerate(zs)}

    def _windowed_inputs(
        self, batch: dict[str, torch.Tensor], cut: slice | None
    ) -> dict[str, torch.Tensor]:
        inputs = self.model.decoder_inputs(batch)
        return inputs if cut is None else {k: v[:, cut] for k, v in inputs.items()}

    def path_evenness(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        cut: slice | None = None,
        controls: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """How far the synth controls at the midpoint between two clips' timbres are from the
        mean of their controls (log harmonic distribution, log noise bands, log amplitude),
        with the first clip's f0 and loudness: zero when the controls move evenly along a
        straight path in z, so a morph between instruments cannot switch halfway.

        With a window ``cut`` the decoder looks at those frames of every clip only, the GRU
        starting there, instead of passes over the whole crop: a fraction of a step.
        ``controls``: from ``window_controls`` (computed here when not given)."""
        if controls is None:
            controls = self.window_controls(out, batch, cut, conversion=False)

        def rep(c: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.cat([torch.log(c[k] + 1e-5) for k in sorted(c)], dim=-1)

        if cut is None:
            a = rep({k: out[k] for k in self.model.synth.control_sizes})
        else:
            a = rep(controls["own"])
        b, mid = rep(controls["other"]), rep(controls["mid"])
        return torch.mean((mid - 0.5 * (a + b)) ** 2)

    def conversion_render(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        cut: slice | None = None,
        controls: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conversion: every clip's f0 and loudness (over the window ``cut``) played with the
        next clip's z, held fixed. Returns (audio Shape [batch, n_samples], other: the index of
        the clip whose z each row was played with). ``controls``: from ``window_controls``."""
        if controls is None:
            controls = self.window_controls(out, batch, cut, path=False)
        other = next_clip(out["z"])
        f0 = batch["f0_hz"] if cut is None else batch["f0_hz"][:, cut]
        with torch.autocast(f0.device.type, enabled=False):
            ids = batch.get("instrument_id")
            audio = self.model.synth(
                f0.float(),
                controls["conversion"],
                instrument_id=None if ids is None else ids[other],
            )["audio"]
        return audio, other

    def timbre_cycle(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        cut: slice | None = None,
        converted: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        found: bool = False,
    ):
        """The conversion, trained: every clip's f0 and loudness played with the next clip's z,
        and the encoder (its weights held fixed here) must find that z's posterior mean in the
        result — mean squared distance per latent dimension. The decoder cannot keep the
        source's timbre when the performance hints at it: what it renders must read as the
        target's timbre to the encoder that placed the instruments apart.

        ``found``: also return what the encoder found (Shape [batch, z_dim]) and the index of
        the clip whose z each row was played with, for ``cycle_class``."""
        audio, other = (
            converted if converted is not None else self.conversion_render(out, batch, cut)
        )
        mu = out["mu"].mean(dim=1)
        f0 = batch["f0_hz"] if cut is None else batch["f0_hz"][:, cut]
        encoder = self.model.encoder
        fixed = {k: p.detach() for k, p in encoder.named_parameters()}
        got = torch.func.functional_call(encoder, fixed, (audio, f0.shape[1], f0))["mu"].mean(1)
        value = torch.mean((got - mu[other].detach()) ** 2)
        return (value, got, other) if found else value

    def cycle_class(self, found: torch.Tensor, target_id: torch.Tensor) -> torch.Tensor:
        """The conversion judged by instrument, not by clip: the cross-entropy of the target
        instrument under the label prior's components, read as a classifier of what the encoder
        found in the conversion (log-likelihood of each instrument's N(m_k, prior_std^2 I), the
        means held fixed here). Where the timbre cycle pulls every latent dimension to the
        target clip's z, this term pulls only along what tells the instruments apart, and fades
        once a conversion reads as its target: its push goes to the pairs that still blend."""
        encoder = self.model.encoder
        means = encoder.prior_mean.detach()
        d2 = ((found.float()[:, None, :] - means[None]) ** 2).sum(-1)
        logits = -d2 / (2.0 * math.exp(encoder.prior_logvar))
        return torch.nn.functional.cross_entropy(logits.float(), target_id.long().reshape(-1))

    def conversion_fluctuation(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        cut: slice | None = None,
        converted: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The conversion's band movement against its timbre's: ``band_fluctuation`` of every
        conversion (on the frames where its own performance sounds) pulled to that of the clip
        whose z it was played with (that clip's whole crop), mean |difference| over clips and
        bands. The reconstruction's term teaches a clip's movement with the f0 that carries it
        (a violin's vibrato is in its f0); this one asks for the timbre's movement under
        another instrument's steadier performance — what the judge found missing in the
        conversions into violin (REPORT, band fluctuation)."""
        audio, other = (
            converted if converted is not None else self.conversion_render(out, batch, cut)
        )
        hop = self.model.synth.hop_length
        source = (
            batch["audio"] if cut is None else batch["audio"][:, cut.start * hop : cut.stop * hop]
        )
        basis, fl_hop = self.fluctuation_basis, FLUCTUATION_FFT // 4
        with torch.autocast(audio.device.type, enabled=False):
            got = band_fluctuation(audio.float(), basis, hop=fl_hop, reference=source.float())
            with torch.no_grad():
                want = band_fluctuation(batch["audio"][other].float(), basis, hop=fl_hop)
        return (got - want).abs().mean()

    def critic_terms(
        self,
        batch: dict[str, torch.Tensor],
        cut: slice | None,
        converted: tuple[torch.Tensor, torch.Tensor],
        stage: str = "train",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The critic learns the instruments from the real crops (over the window ``cut``, as
        long as the conversions), and judges every conversion against the instrument of the clip
        whose z it was played with. Returns (the critic's loss, the conversions' cross-entropy);
        the first moves the critic only, the second the decoder only."""
        assert self.critic is not None
        audio, other = converted
        hop = self.model.synth.hop_length
        real = (
            batch["audio"] if cut is None else batch["audio"][:, cut.start * hop : cut.stop * hop]
        )
        ids = batch["instrument_id"].reshape(-1)
        learn, accuracy = self.critic.learn(real, ids)
        judged = self.critic.judge(audio, ids[other])
        n = audio.shape[0]
        self.log(f"{stage}/critic", learn, batch_size=n)
        self.log(f"{stage}/critic_accuracy", accuracy, batch_size=n)
        self.log(f"{stage}/conversion_critic", judged, batch_size=n)
        return learn, judged

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        out = self.model(batch)
        loss = self.objective(out, batch, "train")
        value = float(loss.detach())
        self.train_history.append(value)
        if not torch.isfinite(loss):
            self._count_nonfinite()
            if self.trainer.world_size == 1:
                # Returning None skips backward and the optimizer step: the weights stay clean.
                return None
            # Under DDP every rank must join the gradient all-reduce: the non-finite gradient
            # reaches all ranks, and on_before_optimizer_step drops it on all of them alike.
            self._nonfinite_counted = True
            return loss
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
            if not self._nonfinite_counted:
                self._count_nonfinite()
            self._nonfinite_counted = False
            return
        self.log("train/grad_norm", norm)
        self.log("train/lr", optimizer.param_groups[0]["lr"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        loss = self.objective(out, batch, "val")
        self.log(
            "val/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0], sync_dist=True
        )
        n = batch["audio"].shape[0]
        self._val_sum, self._val_count = self._val_sum + float(loss) * n, self._val_count + n
        return loss

    def on_validation_epoch_end(self) -> None:
        if self._val_count and not self.trainer.sanity_checking:
            self.val_history.append((int(self.global_step), self._val_sum / self._val_count))
            if self.val_log_path is not None and self.trainer.is_global_zero:
                save_csv(self.val_log_path, val_history_frame(self.val_history))
        self._val_sum, self._val_count = 0.0, 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain types only: the checkpoint must load with torch.load(weights_only=True).
        meta: dict = {"instruments": list(self.instruments)}
        if self.model.encoder is not None and self._trainer is not None:
            self.refresh_latent_summary()
        if self.latent_summary is not None:
            meta["latent"] = self.latent_summary
        # the histories so far: a resumed run continues them, and its summary covers the whole run
        meta["history"] = {
            "train": [float(v) for v in self.train_history],
            "val": [[int(s), float(v)] for s, v in self.val_history],
            "nonfinite_steps": int(self.nonfinite_steps),
            "wall_seconds": float(self.wall_before + time.time() - self._fit_start),
        }
        checkpoint["ddsp_morph"] = meta

    def refresh_latent_summary(self) -> dict:
        """The latent summary (centroids, PCA axes, path speeds) of the weights the model holds
        now, over the training split; computed once per step. A weight average computes it with
        the average swapped in, before this module's checkpoint hook reuses it.

        The path speeds (several seconds) are measured outside the training loop only (the
        final last.ckpt). The checkpoints written inside it, every N steps for a resume and at a
        validation for the best, carry the centroids and axes: the run adds the speeds to the
        one best checkpoint it keeps after the fit (``checkpoint.add_path_speeds``), instead of
        at every validation; a tool that opens one without them measures the speeds itself
        (``latent.with_speeds``) or moves evenly in z."""
        from ddsp_morph.latent.speeds import with_speeds
        from ddsp_morph.latent.summary import latent_summary

        dm = self.trainer.datamodule
        speeds = not self.trainer.training
        if self.latent_summary is None or self.latent_summary["step"] != self.global_step:
            self.latent_summary = latent_summary(
                self.model,
                dm.datasets["train"],
                self.instruments,
                step=int(self.global_step),
                speeds=speeds,
            )
        elif speeds:  # a resume checkpoint's summary at this step: add the speeds
            self.latent_summary = with_speeds(
                self.latent_summary, self.model, dm.datasets["train"], self.instruments, "slerp"
            )
        return self.latent_summary

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        hist = checkpoint.get("ddsp_morph", {}).get("history")
        if hist is not None:
            self.train_history = [float(v) for v in hist["train"]]
            self.val_history = [(int(s), float(v)) for s, v in hist["val"]]
            self.val_history = merged_val_history(
                self.val_history, self.val_log_path, int(checkpoint.get("global_step", 0))
            )
            self.nonfinite_steps = int(hist["nonfinite_steps"])
            self.wall_before = float(hist.get("wall_seconds", 0.0))

    def on_fit_start(self) -> None:
        self._fit_start = time.time()

    def progress(self, step: int) -> float:
        """How far the run is through its budget: steps of ``max_steps`` or seconds of
        ``budget_minutes`` (the parts before a resume included), whichever is further."""
        done = 0.0
        max_steps = getattr(self._trainer, "max_steps", -1) if self._trainer is not None else -1
        if max_steps and max_steps > 0:
            done = step / max_steps
        if self.budget_minutes:
            elapsed = self.wall_before + time.time() - self._fit_start
            done = max(done, elapsed / (60.0 * self.budget_minutes))
        return min(done, 1.0)

    def lr_factor(self, step: int) -> float:
        """The learning rate's factor at ``step``: ``lr_decay ** step``, and over the last
        ``lr_cooldown`` of the budget (``progress``) a linear fall to 0."""
        factor = self.lr_decay**step
        if self.lr_cooldown > 0:
            factor *= min(1.0, (1.0 - self.progress(step)) / self.lr_cooldown)
        return factor

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.parameters())
        if self.lr_cooldown > 0:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)
        elif self.lr_decay < 1.0:
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def val_history_frame(history: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(history, columns=["step", "val_loss"])


def merged_val_history(
    history: list[tuple[int, float]], log_path: Path | None, step: int
) -> list[tuple[int, float]]:
    """A checkpoint's validation history, with the rows of the run's ``val_history.csv`` up to
    its ``step`` that it lacks: a validation that ran after the checkpoint at the same step
    (a kill before the next checkpoint) is not lost. Rows after ``step`` are dropped: the
    resumed run validates them again."""
    if log_path is None or not log_path.exists():
        return history
    try:
        logged = pd.read_csv(log_path)
    except (OSError, ValueError, pd.errors.ParserError):
        return history
    rows = dict(history)
    for s, v in zip(logged["step"], logged["val_loss"], strict=True):
        if int(s) <= step and int(s) not in rows:
            rows[int(s)] = float(v)
    return sorted(rows.items())
