"""The latent space of a trained model: encoding a dataset, instrument centroids and principal
axes (saved with every checkpoint), and the monitoring callback that plots it during training."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddsp_morph.models.encoder import kl_per_dim  # noqa: E402

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Var_x(E[z_d | x]) above this is "active"


@torch.no_grad()
def encode_dataset(model, dataset, *, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Posterior statistics of every item of ``dataset`` (whole items, no crop).

    Returns:
        mu [n_items, z_dim] (clip means), instrument_id [n_items], kl_per_dim [z_dim] (VAE,
        averaged over items and frames; absent for ae), var_mean [z_dim] (mean posterior variance).
    """
    was_training = model.training
    model.eval()
    mus, ids, kls, variances, counts = [], [], [], [], []
    items = [dataset.items[i] for i in range(len(dataset))]
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        n_frames = min(int(it["f0_hz"].shape[0]) for it in chunk)
        hop = model.synth.hop_length
        audio = torch.stack([it["audio"][: n_frames * hop] for it in chunk])
        f0 = torch.stack([it["f0_hz"][:n_frames] for it in chunk])
        enc = model.encoder(audio, n_frames, f0)
        mus.append(enc["mu"].mean(dim=1))
        ids.append(torch.stack([it["instrument_id"] for it in chunk]))
        if "logvar" in enc:
            ids_chunk = torch.stack([it["instrument_id"] for it in chunk])
            prior_mean, prior_logvar = model.encoder.prior_params(ids_chunk)
            kls.append(kl_per_dim(enc["mu"], enc["logvar"], prior_mean, prior_logvar) * len(chunk))
            variances.append(
                enc["logvar"].exp().reshape(-1, enc["logvar"].shape[-1]).mean(0) * len(chunk)
            )
        counts.append(len(chunk))
    model.train(was_training)
    out = {
        "mu": torch.cat(mus).numpy(),
        "instrument_id": torch.cat(ids).numpy(),
    }
    if kls:
        out["kl_per_dim"] = (torch.stack(kls).sum(0) / sum(counts)).numpy()
        out["var_mean"] = (torch.stack(variances).sum(0) / sum(counts)).numpy()
    return out


def pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [D], components [k, D] (unit rows), std along each component [k])."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    std = s[:k] / np.sqrt(max(1, len(x) - 1))
    return mean, vt[:k], std


def latent_summary(
    model, dataset, instruments: list[str], *, step: int, speeds: bool = True
) -> dict:
    """Per-instrument centroids of the clip-level posterior means over ``dataset``, the first
    two principal axes and (``speeds``) the timbre speed along every centroid path
    (``path_speeds``); plain lists, so a checkpoint holding it loads with weights_only=True."""
    enc = encode_dataset(model, dataset)
    mu, ids = enc["mu"], enc["instrument_id"]
    centroids = {
        instruments[i]: mu[ids == i].mean(axis=0).astype(float).tolist()
        for i in sorted(set(ids.tolist()))
    }
    mean, comps, std = pca(mu)
    out = {
        "step": step,
        "centroids": centroids,
        "pca_mean": mean.astype(float).tolist(),
        "pca_components": comps.astype(float).tolist(),
        "pca_std": std.astype(float).tolist(),
        "n_clips": int(len(mu)),
    }
    if speeds:
        out["path_speed"] = {"slerp": path_speeds(model, dataset, instruments, centroids)}
    return out


def with_speeds(latent: dict, model, dataset, instruments: list[str], kind: str) -> dict:
    """``latent`` with the timbre-speed tables of ``kind`` paths, measured now where it has none
    (a checkpoint written before they were stored, or a path kind that is not stored)."""
    if (latent.get("path_speed") or {}).get(kind) is not None:
        return latent
    speeds = path_speeds(model, dataset, instruments, latent["centroids"], kind=kind)
    return {**latent, "path_speed": {**(latent.get("path_speed") or {}), kind: speeds}}


def dry_render(model, batch: dict[str, torch.Tensor], *, seed: int = 0) -> torch.Tensor:
    """The model's dry output (harmonic + noise, no reverb) for a batch carrying z, with the
    same white noise in every row: rows differ by their timbre only. Shape [batch, n_samples]."""
    f0 = batch["f0_hz"]
    inputs = model.decoder_inputs(batch)
    inputs["z"] = model.latent(batch, f0.shape[1])["z"]
    controls = model.synth.get_controls({k: v.float() for k, v in model.decoder(inputs).items()})
    synth = model.synth
    audio = synth.harmonic(f0.float(), controls["amplitude"], controls["harmonic_distribution"])
    if synth.noise is not None:
        g = torch.Generator().manual_seed(seed)
        white = torch.rand(1, audio.shape[-1], generator=g) * 2 - 1
        noise = synth.noise(controls["noise_magnitudes"], noise=white.expand(len(f0), -1))
        audio = audio + noise[..., : audio.shape[-1]]
    return audio


def repeated_clips(
    group: list[dict[str, torch.Tensor]], n: int, max_frames: int, hop: int
) -> dict[str, torch.Tensor]:
    """The clips of ``group`` cut to one length (at most ``max_frames``), each repeated ``n``
    times in a row: one batch of ``len(group) * n`` rows, to render each clip at n points."""
    frames = min(max_frames, *(int(it["f0_hz"].shape[0]) for it in group))
    out = {}
    for k in group[0]:
        rows = []
        for it in group:
            v = it[k]
            if k == "audio":
                v = v[: frames * hop]
            elif v.ndim >= 1 and v.shape[0] == it["f0_hz"].shape[0]:
                v = v[:frames]
            rows.append(v.unsqueeze(0).expand(n, *v.shape))
        out[k] = torch.cat(rows)
    return out


SPEED_POINTS = 17  # points per path where the timbre is described
SPEED_SECONDS = 1.5  # of each clip
SPEED_CLIPS = 4  # clips of the source instrument per path (REPORT, study 13)
SPEED_BANDS, SPEED_FFT = 40, 1024


@torch.no_grad()
def path_speeds(
    model,
    dataset,
    instruments: list[str],
    centroids: dict[str, list[float]],
    *,
    kind: str = "slerp",
    n_points: int = SPEED_POINTS,
    seconds: float = SPEED_SECONDS,
    clips: int = SPEED_CLIPS,
) -> dict[str, list[float]]:
    """How fast the timbre changes along the path from every instrument's centroid to every
    other's, so that a morph control can move it evenly (``evaluation.latent_eval.even_alphas``).

    The path A -> B is walked by A's performances, as the morph table and a conversion walk it:
    the first ``seconds`` of the first ``clips`` clips of A are rendered at ``n_points``
    equally spaced alphas; each render is described by its spectral envelope (the mean over its
    sounding frames of 40 mel bands, dB) and the change between neighbouring points (Euclidean,
    summed over the clips) is accumulated. Returns "A>B" for every ordered pair -> cumulative
    change, 0 at A and 1 at B, Shape [n_points]. A model whose envelope does not move gets the
    straight ramp."""
    from ddsp_morph.dsp.filters import mel_filterbank
    from ddsp_morph.dsp.spectral import mel_band_db
    from ddsp_morph.evaluation.latent_eval import path_points

    names = sorted(centroids)
    if len(names) < 2 or model.encoder is None:
        return {}
    if clips < 1:
        raise ValueError(f"clips: need at least 1, got {clips}")
    by_name: dict[str, list[dict[str, torch.Tensor]]] = {}
    for item in dataset.items:
        group = by_name.setdefault(instruments[int(item["instrument_id"])], [])
        if len(group) < clips:
            group.append(item)
    hop = model.synth.hop_length
    sr = model.synth.sample_rate
    basis = torch.as_tensor(
        mel_filterbank(sample_rate=sr, n_fft=SPEED_FFT, n_mels=SPEED_BANDS, fmin=30.0),
        dtype=torch.float32,
    )

    def envelope(audio: torch.Tensor) -> torch.Tensor:
        db = mel_band_db(audio, basis, SPEED_FFT // 4)  # [n, bands, t]
        energy = db.amax(dim=1, keepdim=True)
        w = (energy > energy.amax(dim=2, keepdim=True) - 50.0).float()
        return (db * w).sum(-1) / w.sum(-1).clamp_min(1.0)

    was_training = model.training
    model.eval()
    ramp = np.linspace(0.0, 1.0, n_points)
    frames = int(seconds * sr / hop)
    batches = {
        name: repeated_clips(group, n_points, frames, hop) for name, group in by_name.items()
    }
    out: dict[str, list[float]] = {}
    for a in names:
        for b in names:
            if a == b:
                continue
            zs = torch.as_tensor(
                path_points(
                    np.asarray(centroids[a], np.float32),
                    np.asarray(centroids[b], np.float32),
                    n_points,
                    kind,
                ),
                dtype=torch.float32,
            )
            change = np.zeros(n_points - 1)
            if a in batches:
                batch = {**batches[a], "z": zs.repeat(len(by_name[a]), 1)}
                env = envelope(dry_render(model, batch)).reshape(-1, n_points, SPEED_BANDS)
                change = torch.linalg.vector_norm(env[:, 1:] - env[:, :-1], dim=-1).sum(0).numpy()
            u = np.concatenate([[0.0], np.cumsum(change)])
            moved = u[-1] > 1e-3  # dB, summed over the path: below it the timbre is still
            out[f"{a}>{b}"] = (u / u[-1] if moved else ramp).astype(float).tolist()
    model.train(was_training)
    return out


def latent_stats(enc: dict[str, np.ndarray]) -> dict[str, float]:
    mu = enc["mu"]
    var_of_mean = mu.var(axis=0)
    stats = {
        "active_units": int((var_of_mean > ACTIVE_UNIT_THRESHOLD).sum()),
        "mu_abs_mean": float(np.abs(mu).mean()),
        "mu_var_across_clips": float(var_of_mean.mean()),
    }
    if "kl_per_dim" in enc:
        stats["kl_total"] = float(enc["kl_per_dim"].sum())
        stats["posterior_var_mean"] = float(enc["var_mean"].mean())
    return stats


def plot_latent(enc: dict[str, np.ndarray], instruments: list[str], path: Path, title: str) -> None:
    """KL (or variance of the mean) per dimension, and a PCA map of clips coloured by instrument."""
    mu, ids = enc["mu"], enc["instrument_id"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    per_dim = enc.get("kl_per_dim", mu.var(axis=0))
    axes[0].bar(np.arange(len(per_dim)), per_dim)
    axes[0].set_xlabel("latent dimension")
    axes[0].set_ylabel("KL (nats)" if "kl_per_dim" in enc else "Var over clips of z")
    axes[0].set_title("per-dimension " + ("KL to the prior" if "kl_per_dim" in enc else "variance"))
    if len(mu) >= 2:
        mean, comps, _ = pca(mu)
        xy = (mu - mean) @ comps.T
        if xy.shape[1] == 1:
            xy = np.concatenate([xy, np.zeros_like(xy)], axis=1)
        for i in sorted(set(ids.tolist())):
            sel = ids == i
            axes[1].scatter(xy[sel, 0], xy[sel, 1], s=12, label=instruments[i])
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("PC 1")
    axes[1].set_ylabel("PC 2")
    axes[1].set_title("posterior means, PCA")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


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
