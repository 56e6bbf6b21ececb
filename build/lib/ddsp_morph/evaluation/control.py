"""Control (Exercise 3): move one conditioning signal by a known amount and measure whether
the output's re-extracted descriptor moves by the amount asked, while f0 stays put.

For a signal s and amounts a_1..a_K (a = 0 is the unmodified performance), each example is
rendered once per amount with s replaced by move(s, a); the descriptor is re-extracted from
every output, and ``obtained(a) = summary(out(a)) - summary(out(0))`` on the same scale as
``a`` (dB, percent, ...) over the example's voiced frames. Over all (example, amount) pairs:
the slope of obtained against asked (1 is perfect control, 0 is none), its R², and the
median f0 error of out(a) against the performance's f0 (cents).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ddsp_morph.data.features import (
    ContextSettings,
    FeatureSettings,
    compute_context,
    compute_features,
)
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.evaluation import metrics
from ddsp_morph.evaluation.latent_eval import r_squared, render


@dataclass(frozen=True)
class Control:
    """How one conditioning signal is moved and measured.

    key: the batch key moved; unit: the unit of ``amounts``; move(values, a) -> new values;
    measure(features of one output, voiced mask) -> a summary of the output;
    change(summary of out(a), summary of out(0)) -> the obtained amount, in ``unit``.
    """

    key: str
    unit: str
    amounts: tuple[float, ...]
    move: Callable[[torch.Tensor, float], torch.Tensor]
    measure: Callable[[dict[str, np.ndarray], np.ndarray], float]
    change: Callable[[float, float], float] = lambda moved, base: moved - base


def _mean(x: np.ndarray, voiced: np.ndarray) -> float:
    return float(np.mean(x[voiced])) if voiced.any() else float("nan")


def _percent(moved_log2: float, base_log2: float) -> float:
    """The change between two log2 summaries, as a percentage."""
    return 100.0 * (2.0 ** (moved_log2 - base_log2) - 1.0)


CONTROLS: dict[str, Control] = {
    # loudness +-6 dB: obtained = change of the mean A-weighted loudness (dB).
    "loudness": Control(
        "loudness_db",
        "dB",
        (-6.0, -3.0, 0.0, 3.0, 6.0),
        lambda v, a: v + a,
        lambda f, m: _mean(f["loudness_db"], m),
    ),
    # centroid -20%..+20%: obtained = change of the geometric-mean centroid, in percent.
    "centroid": Control(
        "centroid_hz",
        "%",
        (-20.0, -10.0, 0.0, 10.0, 20.0),
        lambda v, a: v * (1.0 + a / 100.0),
        lambda f, m: _mean(np.log2(np.maximum(f["centroid_hz"], 20.0)), m),
        _percent,
    ),
    # periodicity down (and up): obtained = change of the mean CREPE periodicity.
    "periodicity": Control(
        "periodicity",
        "periodicity",
        (-0.4, -0.2, 0.0, 0.1),
        lambda v, a: (v + a).clamp(0.0, 1.0),
        lambda f, m: _mean(f["periodicity"], m),
    ),
    # flatness +-6 dB: obtained = change of the mean spectral flatness (dB).
    "flatness": Control(
        "flatness_db",
        "dB",
        (-6.0, -3.0, 0.0, 3.0, 6.0),
        lambda v, a: v + a,
        lambda f, m: _mean(np.maximum(f["flatness_db"], -100.0), m),
    ),
    # roughness x0.5..x2: obtained = change of the mean log2 roughness (octaves of roughness).
    "roughness": Control(
        "roughness",
        "log2 ratio",
        (-1.0, -0.5, 0.0, 0.5, 1.0),
        lambda v, a: v * 2.0**a,
        lambda f, m: _mean(np.log2(f["roughness"] + 1e-4), m),
    ),
    # MFCC 1 (spectral tilt) +-2 natural-log units: obtained = change of the mean MFCC 1.
    "mfcc": Control(
        "mfcc",
        "MFCC 1",
        (-2.0, -1.0, 0.0, 1.0, 2.0),
        lambda v, a: torch.cat([v[..., :1], v[..., 1:2] + a, v[..., 2:]], dim=-1),
        lambda f, m: _mean(f["mfcc"][:, 1], m),
    ),
}


def controllable(conditioning: list[str]) -> list[str]:
    """The signals of a conditioning set that a performer could move (f0 is the pitch)."""
    return [c for c in conditioning if c in CONTROLS]


def control_example(
    model,
    item: dict[str, torch.Tensor],
    signal: str,
    *,
    z: np.ndarray | None,
    settings: FeatureSettings,
    context: ContextSettings,
    threshold: float = 0.5,
) -> list[dict]:
    """Render ``item`` once per amount of ``signal`` and measure. One row per amount."""
    if signal not in CONTROLS:
        raise DDSPMorphError(f"control: unknown signal {signal!r}; known: {sorted(CONTROLS)}")
    ctl = CONTROLS[signal]
    voiced = metrics.voiced_mask(
        item["periodicity"].numpy(), item["loudness_db"].numpy(), threshold=threshold
    )
    rendered = []  # (amount, summary of the output, median f0 error)
    for a in sorted(set(ctl.amounts) | {0.0}):
        moved = dict(item)
        moved[ctl.key] = ctl.move(item[ctl.key], a)
        audio = render(model, moved, z)["audio"]
        feats = {**compute_features(audio, settings), **compute_context(audio, context)}
        n = min(len(voiced), len(feats["f0_hz"]))
        summary = ctl.measure({k: v[:n] for k, v in feats.items()}, voiced[:n])
        f0 = metrics.f0_metrics(item["f0_hz"].numpy()[:n], feats["f0_hz"][:n], voiced[:n])
        rendered.append((a, summary, f0["f0_cents_median"]))
    base = next(summary for a, summary, _ in rendered if a == 0.0)
    rows = [
        {
            "signal": signal,
            "unit": ctl.unit,
            "asked": float(a),
            "obtained": float(ctl.change(summary, base)),
            "f0_cents_median": cents,
        }
        for a, summary, cents in rendered
    ]
    return rows


def summarize_control(rows: list[dict]) -> dict[str, float]:
    """Slope and R² of obtained against asked (through all rows), and the worst median f0
    error of any moved rendering."""
    asked = np.array([r["asked"] for r in rows], dtype=np.float64)
    obtained = np.array([r["obtained"] for r in rows], dtype=np.float64)
    ok = np.isfinite(obtained)
    if ok.sum() < 2 or np.ptp(asked[ok]) == 0:
        return {"slope": float("nan"), "r2": float("nan"), "f0_cents_median_worst": float("nan")}
    slope = float(np.polyfit(asked[ok], obtained[ok], 1)[0])
    return {
        "slope": slope,
        "r2": r_squared(asked[ok], obtained[ok]),
        "f0_cents_median_worst": float(np.nanmax([r["f0_cents_median"] for r in rows])),
    }
