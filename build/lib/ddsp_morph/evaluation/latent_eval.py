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

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from ddsp_morph.data.features import FeatureSettings, compute_features
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.evaluation import metrics
from ddsp_morph.latent.geometry import centroids_of, known_centroids, path_points


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
