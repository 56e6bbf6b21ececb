"""Reconstruction metrics on frame-rate features (numpy; no model, no I/O).

Definitions used in every report:

- f0 error: 1200 * log2(f0_output / f0_input) cents per frame, over the *voiced* frames: those
  where the input's periodicity (CREPE confidence) is at least ``threshold`` (default 0.5) and
  its loudness is above ``floor_db`` + 20 dB. Both f0 tracks come from the same estimator.
- frame outlier rate: the fraction of voiced frames off by more than 50 cents.
- octave outlier (per example): the median absolute error of its voiced frames is at least
  1100 cents — the output sits an octave (give or take a semitone) or more away.
- octave-error frames: the fraction of voiced frames whose error is within 100 cents of an
  octave (±1200) — frame by frame, so an example with a few wrong octaves shows them.
- against the truth (corpora with the renderer's f0, e.g. the default one): the same, on the
  frames where a note is held, for the input's features (``truth_features_*``: what the
  estimator got wrong) and for the output (``truth_output_*``: what the listener hears); RPA is
  the fraction of those frames within 50 cents.
- loudness L1: mean over all frames of |L_output - L_input| in dB, both floored at ``floor_db``
  (silence in both is a perfect match, not a 100 dB debate about how silent).
"""

from __future__ import annotations

import numpy as np

OUTLIER_CENTS = 50.0
OCTAVE_OUTLIER_CENTS = 1100.0


def cents(f_est: np.ndarray, f_ref: np.ndarray) -> np.ndarray:
    """Signed error in cents of ``f_est`` against ``f_ref`` (both in Hz, > 0)."""
    return 1200.0 * np.log2(np.asarray(f_est, np.float64) / np.asarray(f_ref, np.float64))


def voiced_mask(
    periodicity: np.ndarray,
    loudness_db: np.ndarray,
    *,
    threshold: float = 0.5,
    floor_db: float = -80.0,
) -> np.ndarray:
    return (np.asarray(periodicity) >= threshold) & (np.asarray(loudness_db) > floor_db + 20.0)


def f0_metrics(f0_ref: np.ndarray, f0_est: np.ndarray, voiced: np.ndarray) -> dict[str, float]:
    n = min(len(f0_ref), len(f0_est), len(voiced))
    v = np.asarray(voiced[:n], bool)
    if not v.any():
        nan = float("nan")
        return {
            "n_voiced_frames": 0,
            "f0_cents_median": nan,
            "f0_cents_mean": nan,
            "f0_cents_p95": nan,
            "f0_outlier_rate": nan,
            "octave_outlier": False,
        }
    err = np.abs(cents(f0_est[:n][v], f0_ref[:n][v]))
    median = float(np.median(err))
    return {
        "n_voiced_frames": int(v.sum()),
        "f0_cents_median": median,
        "f0_cents_mean": float(err.mean()),
        "f0_cents_p95": float(np.percentile(err, 95)),
        "f0_outlier_rate": float((err > OUTLIER_CENTS).mean()),
        "octave_outlier": bool(median >= OCTAVE_OUTLIER_CENTS),
    }


def octave_error_rate(f0_ref: np.ndarray, f0_est: np.ndarray, voiced: np.ndarray) -> float:
    """Fraction of ``voiced`` frames off by an octave (1200 ± 100 cents, either way)."""
    n = min(len(f0_ref), len(f0_est), len(voiced))
    v = np.asarray(voiced[:n], bool) & (np.asarray(f0_ref[:n]) > 0) & (np.asarray(f0_est[:n]) > 0)
    if not v.any():
        return float("nan")
    err = np.abs(cents(f0_est[:n][v], f0_ref[:n][v]))
    return float((np.abs(err - 1200.0) < 100.0).mean())


def truth_metrics(
    f0_truth: np.ndarray, voiced_truth: np.ndarray, f0_est: np.ndarray, prefix: str
) -> dict[str, float]:
    """``f0_est`` against the renderer's truth on the frames where a note is held."""
    n = min(len(f0_truth), len(f0_est), len(voiced_truth))
    v = np.asarray(voiced_truth[:n], bool) & (np.asarray(f0_truth[:n]) > 0)
    if not v.any():
        nan = float("nan")
        return {f"{prefix}_rpa": nan, f"{prefix}_cents_median": nan, f"{prefix}_octave_rate": nan}
    err = np.abs(cents(f0_est[:n][v], f0_truth[:n][v]))
    return {
        f"{prefix}_rpa": float((err < OUTLIER_CENTS).mean()),
        f"{prefix}_cents_median": float(np.median(err)),
        f"{prefix}_octave_rate": octave_error_rate(f0_truth[:n], f0_est[:n], v),
        f"{prefix}_frames": int(v.sum()),
    }


def loudness_l1(ref_db: np.ndarray, est_db: np.ndarray, *, floor_db: float = -80.0) -> float:
    n = min(len(ref_db), len(est_db))
    a = np.maximum(np.asarray(ref_db[:n], np.float64), floor_db)
    b = np.maximum(np.asarray(est_db[:n], np.float64), floor_db)
    return float(np.abs(a - b).mean())


def summarize(frame_metrics: list[dict]) -> dict[str, float]:
    """Aggregate per-example rows: means, plus the octave-outlier rate over examples and the
    frame outlier rate pooled over all voiced frames."""
    import pandas as pd

    df = pd.DataFrame(frame_metrics)
    out: dict[str, float] = {"n_examples": int(len(df))}
    for col in ("spectral_distance", "f0_cents_median", "f0_cents_mean", "loudness_l1_db"):
        if col in df:
            out[col] = float(df[col].mean())
    if "n_voiced_frames" in df and df["n_voiced_frames"].sum() > 0:
        w = df["n_voiced_frames"]
        out["f0_outlier_rate"] = float((df["f0_outlier_rate"].fillna(0) * w).sum() / w.sum())
    if "octave_outlier" in df:
        out["octave_outlier_rate"] = float(df["octave_outlier"].astype(float).mean())
    if "octave_frame_rate" in df and "n_voiced_frames" in df and df["n_voiced_frames"].sum() > 0:
        w = df["n_voiced_frames"]
        out["octave_frame_rate"] = float((df["octave_frame_rate"].fillna(0) * w).sum() / w.sum())
    for prefix in ("truth_features", "truth_output"):
        frames = f"{prefix}_frames"
        if frames in df and df[frames].sum() > 0:
            w = df[frames]
            for col in ("rpa", "octave_rate", "cents_median"):
                out[f"{prefix}_{col}"] = float(
                    (df[f"{prefix}_{col}"].fillna(0) * w).sum() / w.sum()
                )
    return out
