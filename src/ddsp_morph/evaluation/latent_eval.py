"""Travelling the latent space: interpolation between instrument centroids and conversion
(timbre transfer), each rendered from one performance and measured.

Measures along a path z(alpha), alpha = 0 .. 1 (from instrument A's centroid to B's):
- P(B) from the instrument classifier (trained on real audio) at every step; its monotonicity
  (Spearman rho against alpha, and the fraction of steps where it does not fall) and the
  largest single-step jump;
- the linearity (R^2 of a straight-line fit against alpha) of two descriptors of the output:
  spectral centroid (Hz, loudness-weighted mean over frames) and harmonic-to-noise ratio (dB,
  energy of the harmonic synth over the noise synth — exact for a DDSP model);
- preservation at every step: f0 error (cents) and loudness L1 (dB) against the performance.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from ddsp_morph.data.features import FeatureSettings, compute_features  # noqa: E402
from ddsp_morph.errors import DDSPMorphError  # noqa: E402
from ddsp_morph.evaluation import metrics  # noqa: E402
from ddsp_morph.training.artifacts import show_spectrogram  # noqa: E402


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of directions, with the norm interpolated linearly."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    u = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return u * ((1 - t) * na + t * nb)


def even_alphas(alphas: np.ndarray, speed: list[float] | np.ndarray | None) -> np.ndarray:
    """Where on the path each control value lands when the timbre is to move evenly.

    ``speed``: the path's cumulative timbre change (0 .. 1) at equally spaced alphas (see
    ``training.latent.path_speeds``); control value c goes to the alpha where that change is c.
    None: alphas unchanged."""
    alphas = np.asarray(alphas, np.float64)
    if speed is None:
        return alphas
    u = np.maximum.accumulate(np.asarray(speed, np.float64))
    if len(u) < 2 or not np.isfinite(u).all() or u[-1] - u[0] <= 0:
        return alphas
    u = (u - u[0]) / (u[-1] - u[0])
    return np.interp(alphas, u, np.linspace(0.0, 1.0, len(u)))


def path_points(
    a: np.ndarray,
    b: np.ndarray,
    steps: int,
    kind: str = "linear",
    speed: list[float] | np.ndarray | None = None,
) -> np.ndarray:
    """``steps`` points from a to b (``kind`` linear | slerp), equally spaced in alpha, or, with
    a ``speed`` table, equally spaced in timbre change (``even_alphas``)."""
    if steps < 2:
        raise DDSPMorphError(f"steps: need at least 2, got {steps}")
    alphas = even_alphas(np.linspace(0.0, 1.0, steps), speed)
    if kind == "linear":
        return np.stack([(1 - t) * a + t * b for t in alphas])
    if kind == "slerp":
        return np.stack([slerp(a, b, t) for t in alphas])
    raise DDSPMorphError(f"path: expected 'linear' or 'slerp', got {kind!r}")


def chain_points(
    points: list[np.ndarray],
    steps: int,
    kind: str = "linear",
    speeds: list | None = None,
) -> np.ndarray:
    """A path through more than two points (instrument centroids, in order): ``steps`` points
    per segment, the shared vertices once; ``speeds``: one table (or None) per segment.
    Shape [(len(points) - 1) * (steps - 1) + 1, z_dim]."""
    if len(points) < 2:
        raise DDSPMorphError(f"a path needs at least 2 instruments, got {len(points)}")
    speeds = speeds or [None] * (len(points) - 1)
    segs = [
        path_points(a, b, steps, kind, sp)
        for a, b, sp in zip(points[:-1], points[1:], speeds, strict=True)
    ]
    return np.concatenate([segs[0], *[s[1:] for s in segs[1:]]])


def speed_between(latent: dict | None, source: str, target: str, kind: str) -> list | None:
    """The stored timbre-speed table from ``source`` to ``target`` on a ``kind`` path (a run's
    latent summary, ``training.latent.path_speeds``: one per ordered pair, measured on the
    source's performances), or None where the run has none."""
    table = ((latent or {}).get("path_speed") or {}).get(kind) or {}
    if f"{source}>{target}" in table:
        return list(table[f"{source}>{target}"])
    if f"{target}>{source}" in table:  # a run that stored one direction: walked backwards
        u = np.asarray(table[f"{target}>{source}"], np.float64)
        return (u[-1] - u[::-1]).tolist()
    return None


def known_centroids(run, *names: str) -> dict[str, np.ndarray]:
    """The run's centroids, after checking that it knows every instrument of ``names``."""
    cents = centroids_of(run)
    for name in names:
        if name not in cents:
            raise DDSPMorphError(
                f"instrument {name!r}: no centroid; this run knows {sorted(cents)}"
            )
    return cents


def centroids_of(run) -> dict[str, np.ndarray]:
    latent = run.extra.get("latent")
    if not latent:
        raise DDSPMorphError(
            f"{run.checkpoint_path}: no latent centroids in this checkpoint (trained with latent=none?)"
        )
    return {k: np.asarray(v, np.float32) for k, v in latent["centroids"].items()}


@torch.no_grad()
def render(
    model, item: dict[str, torch.Tensor], z: np.ndarray | None, seed: int = 0
) -> dict[str, np.ndarray]:
    """One performance (f0, loudness of ``item``) through the model with timbre ``z`` (None:
    the item's own encoding)."""
    batch = {k: v.unsqueeze(0) for k, v in item.items()}
    if z is not None:
        batch["z"] = torch.as_tensor(z, dtype=torch.float32)[None]
    out = model(batch, generator=torch.Generator().manual_seed(seed))
    return {k: out[k][0].numpy() for k in ("audio", "harmonic", "noise") if k in out}


def descriptors(out: dict[str, np.ndarray], sample_rate: int = 16000) -> dict[str, float]:
    import librosa

    audio = out["audio"]
    cent = librosa.feature.spectral_centroid(y=audio, sr=sample_rate, n_fft=1024, hop_length=256)[0]
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0]
    w = rms**2
    centroid = float((cent * w).sum() / max(w.sum(), 1e-12))
    h = float((out["harmonic"] ** 2).sum())
    n = float((out["noise"] ** 2).sum()) if "noise" in out else 0.0
    hnr = 10 * np.log10(max(h, 1e-12) / max(n, 1e-12)) if n > 0 else float("inf")
    return {"centroid_hz": centroid, "hnr_db": float(hnr)}


def preservation(
    item: dict[str, torch.Tensor],
    audio: np.ndarray,
    settings: FeatureSettings,
    threshold: float = 0.5,
) -> dict[str, float]:
    est = compute_features(audio, settings)
    voiced = metrics.voiced_mask(
        item["periodicity"].numpy(), item["loudness_db"].numpy(), threshold=threshold
    )
    f0 = metrics.f0_metrics(item["f0_hz"].numpy(), est["f0_hz"], voiced)
    return {
        "f0_cents_median": f0["f0_cents_median"],
        "f0_outlier_rate": f0["f0_outlier_rate"],
        "loudness_l1_db": metrics.loudness_l1(item["loudness_db"].numpy(), est["loudness_db"]),
    }


def r_squared(x: np.ndarray, y: np.ndarray) -> float:
    if not np.all(np.isfinite(y)) or np.ptp(y) == 0:
        return float("nan")
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    return float(1 - resid.var() / y.var())


def interpolate(
    run,
    item,
    source: str,
    target: str,
    *,
    steps: int,
    kind: str,
    classifier,
    settings: FeatureSettings,
    speed: list[float] | None = None,
) -> tuple[pd.DataFrame, dict, list[np.ndarray]]:
    cents = known_centroids(run, source, target)
    zs = path_points(cents[source], cents[target], steps, kind, speed)
    alphas = np.linspace(0, 1, steps)
    rows, audios = [], []
    for alpha, z in zip(alphas, zs, strict=True):
        out = render(run.model, item, z)
        audios.append(out["audio"])
        p = classifier.proba_of(out["audio"], settings.sample_rate)
        row = {"alpha": float(alpha), "p_target": p[target], "p_source": p[source]}
        row.update(descriptors(out, settings.sample_rate))
        row.update(preservation(item, out["audio"], settings))
        rows.append(row)
    df = pd.DataFrame(rows)
    p = df["p_target"].to_numpy()
    summary = {
        "from": source,
        "to": target,
        "path": kind,
        "even": speed is not None,
        "steps": steps,
        "p_target_start": float(p[0]),
        "p_target_end": float(p[-1]),
        "p_target_spearman": float(spearmanr(alphas, p).statistic)
        if np.ptp(p) > 0
        else float("nan"),
        "p_target_monotonic_fraction": float(np.mean(np.diff(p) >= -1e-3)),
        "p_target_max_jump": float(np.abs(np.diff(p)).max()),
        "centroid_r2": r_squared(alphas, df["centroid_hz"].to_numpy()),
        "hnr_r2": r_squared(alphas, df["hnr_db"].to_numpy()),
        "f0_cents_median_worst": float(df["f0_cents_median"].max()),
        "loudness_l1_db_worst": float(df["loudness_l1_db"].max()),
        "f0_cents_median_mean": float(df["f0_cents_median"].mean()),
        "loudness_l1_db_mean": float(df["loudness_l1_db"].mean()),
    }
    return df, summary, audios


def convert(
    run, item, target: str, *, classifier, settings: FeatureSettings, z: np.ndarray | None = None
) -> dict:
    """Timbre transfer: the item's performance decoded with ``target``'s centroid (or ``z``)."""
    cents = centroids_of(run)
    if z is None:
        if target not in cents:
            raise DDSPMorphError(
                f"instrument {target!r}: no centroid; this run knows {sorted(cents)}"
            )
        z = cents[target]
    out = render(run.model, item, z)
    p = classifier.proba_of(out["audio"], settings.sample_rate)
    row = {"target": target, "p_target": p[target], "predicted": max(p, key=p.get)}
    row["correct"] = row["predicted"] == target
    row.update(preservation(item, out["audio"], settings))
    row["audio"] = out["audio"]
    return row


def strip_plot(
    audios: list[np.ndarray], df: pd.DataFrame, path: Path, *, title: str, sample_rate: int = 16000
) -> None:
    """Spectrograms of every step side by side, P(target) and the descriptors underneath."""
    n = len(audios)
    fig = plt.figure(figsize=(1.6 * n + 1, 5.2))
    gs = fig.add_gridspec(2, n, height_ratios=[2.2, 1])
    for i, a in enumerate(audios):
        ax = fig.add_subplot(gs[0, i])
        show_spectrogram(ax, a, sample_rate)
        ax.set_title(f"α={df['alpha'].iloc[i]:.2f}", fontsize=8)
        ax.set_xticks([])
        if i:
            ax.set_yticks([])
        else:
            ax.set_ylabel("kHz")
    ax = fig.add_subplot(gs[1, :])
    ax.plot(df["alpha"], df["p_target"], "o-", label="P(target)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("α")
    ax2 = ax.twinx()
    ax2.plot(df["alpha"], df["centroid_hz"], "s--", color="tab:orange", label="centroid (Hz)")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
