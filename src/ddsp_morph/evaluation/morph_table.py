"""The morph table: does every instrument pair morph, audibly and smoothly?

For every ordered pair (A, B) of a run's instruments, test examples of A are rendered with z on
the path from A's centroid to B's (alpha = 0 .. 1) and judged by the instrument classifier
trained on the corpus's real audio (never on model output):

- P(B) at alpha = 0 and 1, Spearman(alpha, P(B)) and the largest single step of P(B), on the
  mean curve over the first ``n_examples`` examples (the worst example's largest step too);
  P(B) at the two ends also over every test example of A (``p_b_*_all``: what the targets
  read, so that no one clip decides a pair);
- how evenly the timbre moves: the per-step change of spectral centroid and harmonic-to-noise
  ratio, as largest step / mean step (1 = perfectly even);
- f0 and loudness kept: re-extracted from the output at a few alphas, against the performance.

Over the whole test split: conversion accuracy (each clip decoded with every other
instrument's centroid: the classifier's argmax is the target) and resynthesis accuracy (each
clip decoded with its own encoding: the argmax is its own instrument).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from ddsp_morph.config import group_defaults
from ddsp_morph.data.features import FeatureSettings
from ddsp_morph.data.io import save_csv, save_json
from ddsp_morph.evaluation.latent_eval import descriptors, preservation
from ddsp_morph.latent.geometry import path_points, speed_between
from ddsp_morph.latent.speeds import with_speeds
from ddsp_morph.plots import plot_morph

log = logging.getLogger(__name__)

# The targets for the default run: name -> (column of the summary, comparison, bound).
TARGETS = {
    # the ends over every test clip of A (the path between them: the first n_examples clips)
    "P(B) at alpha=0 <= 0.1, every pair": ("p_b_start_all_max", "<=", 0.1),
    "P(B) at alpha=1 >= 0.9, every pair": ("p_b_end_all_min", ">=", 0.9),
    "Spearman(alpha, P(B)) >= 0.95, every pair": ("spearman_min", ">=", 0.95),
    "largest single step <= 0.35, every pair": ("max_step_max", "<=", 0.35),
    "conversion accuracy >= 0.9": ("conversion_accuracy", ">=", 0.9),
    "f0 median within 5 cents, every pair": ("f0_cents_median_worst", "<=", 5.0),
    "resynthesis keeps the instrument >= 0.95, every instrument": (
        "resynthesis_accuracy_min",
        ">=",
        0.95,
    ),
}


_DEFAULT = group_defaults("morph")  # conf/morph/default.yaml: the one source of these defaults


@dataclass(frozen=True)
class MorphSettings:
    steps: int = _DEFAULT.steps  # alphas 0, 0.1, ... 1
    n_examples: int = _DEFAULT.n_examples  # test examples of A per pair whose path is rendered
    f0_alphas: tuple[float, ...] = (0.0, 0.5, 1.0)  # where f0/loudness are re-extracted
    path: str = _DEFAULT.path
    even: bool = _DEFAULT.even  # alphas equally spaced in timbre change (the run's speeds)
    batch_size: int = 16
    seed: int = 0

    @classmethod
    def from_config(cls, node, seed: int | None) -> MorphSettings:
        """From a config's morph settings (the ``morph`` group, or a CLI config holding it)."""
        return cls(
            steps=int(node.steps),
            n_examples=int(node.n_examples),
            path=str(node.path),
            even=bool(node.even),
            seed=int(seed if seed is not None else 0),
        )


def _batch_of(item: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v.unsqueeze(0).expand(n, *v.shape) for k, v in item.items() if k != "z"}


@torch.no_grad()
def render_many(
    model, item: dict[str, torch.Tensor], zs: np.ndarray | None, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """One performance rendered with each z of ``zs`` (Shape [n, z_dim]) in one batch; None:
    with its own encoding. Returns audio, harmonic, noise Shape [n, n_samples]."""
    n = 1 if zs is None else len(zs)
    batch = _batch_of(item, n)
    if zs is not None:
        batch["z"] = torch.as_tensor(np.asarray(zs), dtype=torch.float32)
    out = model(batch, generator=torch.Generator().manual_seed(seed))
    return {k: out[k].numpy() for k in ("audio", "harmonic", "noise") if k in out}


def step_evenness(values: np.ndarray) -> float:
    """Largest |step| / mean |step| along a path (1: every step the same size; nan: no change)."""
    d = np.abs(np.diff(np.asarray(values, np.float64)))
    if not np.all(np.isfinite(d)) or d.mean() <= 0:
        return float("nan")
    return float(d.max() / d.mean())


def _spearman(alphas: np.ndarray, p: np.ndarray) -> float:
    return float(spearmanr(alphas, p).statistic) if np.ptp(p) > 0 else float("nan")


def path_measures(
    model,
    items: list[dict[str, torch.Tensor]],
    za: np.ndarray,
    zb: np.ndarray,
    target: str,
    *,
    classifier,
    settings: MorphSettings,
    features: FeatureSettings,
    speed: list[float] | None = None,
) -> tuple[dict, np.ndarray]:
    """One ordered pair: every measure of the module docstring over ``items`` (performances of
    A), at alphas equally spaced in timbre change when a ``speed`` table is given. Returns
    (row, the mean P(B) curve over alphas)."""
    alphas = np.linspace(0.0, 1.0, settings.steps)
    zs = path_points(za, zb, settings.steps, settings.path, speed)
    curves, cent, hnr, worst_steps, keep = [], [], [], [], []
    for e, item in enumerate(items):
        out = render_many(model, item, zs, seed=settings.seed)
        p = np.array([classifier.proba_of(a, features.sample_rate)[target] for a in out["audio"]])
        curves.append(p)
        worst_steps.append(float(np.abs(np.diff(p)).max()))
        d = [
            descriptors({k: v[i] for k, v in out.items()}, features.sample_rate)
            for i in range(len(zs))
        ]
        cent.append([x["centroid_hz"] for x in d])
        hnr.append([x["hnr_db"] for x in d])
        if e == 0:  # f0 and loudness re-extracted (CREPE) on the first example only
            for a in settings.f0_alphas:
                i = int(round(a * (settings.steps - 1)))
                keep.append(preservation(item, out["audio"][i], features))
    curve = np.mean(curves, axis=0)
    cent_m, hnr_m = np.mean(cent, axis=0), np.mean(hnr, axis=0)
    row = {
        "p_b_start": float(curve[0]),
        "p_b_end": float(curve[-1]),
        "spearman": _spearman(alphas, curve),
        "max_step": float(np.abs(np.diff(curve)).max()),
        "max_step_worst_example": float(max(worst_steps)),
        "centroid_start_hz": float(cent_m[0]),
        "centroid_end_hz": float(cent_m[-1]),
        "centroid_step_ratio": step_evenness(cent_m),
        "hnr_start_db": float(hnr_m[0]),
        "hnr_end_db": float(hnr_m[-1]),
        "hnr_step_ratio": step_evenness(hnr_m),
        "f0_cents_median_worst": float(max(k["f0_cents_median"] for k in keep)),
        "f0_outlier_rate_worst": float(max(k["f0_outlier_rate"] for k in keep)),
        "loudness_l1_db_worst": float(max(k["loudness_l1_db"] for k in keep)),
    }
    return row, curve


def classify_renders(
    model,
    items: list[dict[str, torch.Tensor]],
    labels: list[str],
    centroids: dict[str, np.ndarray],
    *,
    classifier,
    sample_rate: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Every item decoded with its own encoding ("resynthesis") and with every centroid; one row
    per (item, target) with the classifier's argmax and P(target)."""
    names = sorted(centroids)
    zs = np.stack([centroids[n] for n in names])
    rows = []
    for item, label in zip(items, labels, strict=True):
        renders = [("resynthesis", render_many(model, item, None, seed=seed)["audio"][0])]
        conv = render_many(model, item, zs, seed=seed)["audio"]
        renders += list(zip(names, conv, strict=True))
        for target, audio in renders:
            p = classifier.proba_of(audio, sample_rate)
            want = label if target == "resynthesis" else target
            rows.append(
                {
                    "source": label,
                    "target": target,
                    "predicted": max(p, key=p.get),
                    "p_target": p.get(want, 0.0),
                    "correct": max(p, key=p.get) == want,
                    **{f"p_{k}": float(v) for k, v in p.items()},
                }
            )
    return pd.DataFrame(rows)


def morph_study(
    model,
    items_by_instrument: dict[str, list[dict[str, torch.Tensor]]],
    centroids: dict[str, np.ndarray],
    *,
    classifier,
    features: FeatureSettings,
    settings: MorphSettings = MorphSettings(),
    latent: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """The whole table. ``items_by_instrument``: test performances per instrument; ``latent``:
    the run's latent summary, whose timbre-speed tables space the alphas (``settings.even``).

    Returns (pairs: one row per ordered pair, curves: P(B) per alpha per pair, renders: the
    conversion/resynthesis rows, summary with the targets checked)."""
    model.eval()
    known = [n for n in sorted(items_by_instrument) if n in centroids and n in classifier.classes]
    alphas = np.linspace(0.0, 1.0, settings.steps)
    pairs, curves = [], []
    for a in known:
        for b in known:
            if a == b:
                continue
            items = items_by_instrument[a][: settings.n_examples]
            speed = speed_between(latent, a, b, settings.path) if settings.even else None
            row, curve = path_measures(
                model,
                items,
                centroids[a],
                centroids[b],
                b,
                classifier=classifier,
                settings=settings,
                features=features,
                speed=speed,
            )
            pairs.append(
                {
                    "from": a,
                    "to": b,
                    "path": settings.path,
                    "even": speed is not None,
                    "n_examples": len(items),
                    **row,
                }
            )
            curves += [
                {"from": a, "to": b, "alpha": float(t), "p_b": float(p)}
                for t, p in zip(alphas, curve, strict=True)
            ]
    items, labels = [], []
    for name in known:
        items += items_by_instrument[name]
        labels += [name] * len(items_by_instrument[name])
    renders = classify_renders(
        model,
        items,
        labels,
        {k: centroids[k] for k in known},
        classifier=classifier,
        sample_rate=features.sample_rate,
        seed=settings.seed,
    )
    pairs_df, curves_df = pd.DataFrame(pairs), pd.DataFrame(curves)
    if len(pairs_df):
        pairs_df = pairs_df.join(
            pd.DataFrame(
                [
                    endpoints_over_all_clips(renders, r["from"], r["to"])
                    for _, r in pairs_df.iterrows()
                ]
            )
        )
    return pairs_df, curves_df, renders, summarize(pairs_df, renders)


def endpoints_over_all_clips(renders: pd.DataFrame, a: str, b: str) -> dict:
    """P(B) at the path's ends over every test clip of A: the clips decoded with A's centroid
    (alpha = 0) and with B's (alpha = 1), as ``classify_renders`` decoded them. The path
    itself is rendered for the first ``n_examples`` clips only; its ends are these decodings."""
    start = renders[(renders["source"] == a) & (renders["target"] == a)]
    end = renders[(renders["source"] == a) & (renders["target"] == b)]
    return {
        "n_clips_all": int(len(end)),
        "p_b_start_all": float(start[f"p_{b}"].mean()) if len(start) else float("nan"),
        "p_b_end_all": float(end["p_target"].mean()) if len(end) else float("nan"),
    }


def summarize(pairs: pd.DataFrame, renders: pd.DataFrame) -> dict:
    """The aggregate figures and the targets met."""
    resyn = renders[renders["target"] == "resynthesis"]
    conv = renders[(renders["target"] != "resynthesis") & (renders["target"] != renders["source"])]
    per_inst = resyn.groupby("source")["correct"].mean()
    s: dict = {
        "n_pairs": int(len(pairs)),
        "n_test_clips": int(len(resyn)),
        "conversion_accuracy": float(conv["correct"].mean()) if len(conv) else float("nan"),
        "resynthesis_accuracy": float(resyn["correct"].mean()) if len(resyn) else float("nan"),
        "resynthesis_accuracy_min": float(per_inst.min()) if len(per_inst) else float("nan"),
        "resynthesis_accuracy_per_instrument": {k: float(v) for k, v in per_inst.items()},
    }
    if len(pairs):
        s.update(
            p_b_start_max=float(pairs["p_b_start"].max()),
            p_b_end_min=float(pairs["p_b_end"].min()),
            p_b_start_all_max=float(pairs["p_b_start_all"].max()),
            p_b_end_all_min=float(pairs["p_b_end_all"].min()),
            p_b_end_all_worst_pair=_pair_name(pairs.loc[pairs["p_b_end_all"].idxmin()]),
            p_b_end_all_below=int((pairs["p_b_end_all"] < TARGETS[END_TARGET][2]).sum()),
            spearman_min=float(pairs["spearman"].fillna(-1.0).min()),
            max_step_max=float(pairs["max_step"].max()),
            f0_cents_median_worst=float(pairs["f0_cents_median_worst"].max()),
            loudness_l1_db_worst=float(pairs["loudness_l1_db_worst"].max()),
            centroid_step_ratio_median=float(pairs["centroid_step_ratio"].median()),
            hnr_step_ratio_median=float(pairs["hnr_step_ratio"].median()),
        )
    met = {}
    for name, (key, op, bound) in TARGETS.items():
        v = s.get(key)
        if v is None or not np.isfinite(v):
            met[name] = None
        else:
            met[name] = bool(v <= bound if op == "<=" else v >= bound)
    s["targets"] = met
    s["targets_met"] = int(sum(1 for v in met.values() if v))
    s["targets_checked"] = int(sum(1 for v in met.values() if v is not None))
    return s


END_TARGET = "P(B) at alpha=1 >= 0.9, every pair"


def _pair_name(row) -> str:
    return f"{row['from']} -> {row['to']}"


def listener_line(s: dict) -> str:
    """What the morph table means for someone listening, in one line."""
    if not s.get("n_pairs"):
        return "morph, for a listener: one instrument, nothing to morph between"
    end_bound = TARGETS[END_TARGET][2]
    if s["p_b_end_all_below"]:
        end = (
            f"{s['p_b_end_all_below']} of {s['n_pairs']} pairs end as a blend rather than as "
            f"their target (worst {s['p_b_end_all_worst_pair']}: heard as the target in "
            f"{s['p_b_end_all_min']:.0%} of clips)"
        )
    else:
        end = (
            f"every pair ends as its target instrument (at least {s['p_b_end_all_min']:.0%} of "
            f"clips; the closest call {s['p_b_end_all_worst_pair']}; target {end_bound:.0%})"
        )
    step = s["max_step_max"]
    way = (
        "the timbre moves gradually on the way"
        if step <= TARGETS["largest single step <= 0.35, every pair"][2]
        else "the timbre jumps somewhere on the way"
    )
    own = s["resynthesis_accuracy_min"]
    worst = min(s["resynthesis_accuracy_per_instrument"].items(), key=lambda kv: kv[1])[0]
    resyn = (
        f"every instrument is recognised in its own resynthesis (worst {worst}, {own:.0%})"
        if own >= 0.95
        else f"{worst} is recognised in only {own:.0%} of its own resyntheses"
    )
    return (
        f"morph, for a listener: {end}; {way} (largest step of P(B) {step:.2f}); {resyn}; "
        f"pitch kept within {s['f0_cents_median_worst']:.1f} cents"
    )


# Audio per instrument against the morph targets: make train's default on the csound GM bank
# at 2, 4 and 8 minutes per instrument (experiments/ex2_latent/cross_corpus/REPORT.md, "How much
# audio per instrument"). On the SoundFont where the recipe fails (FluidR3), more audio does
# not help: 8 minutes gives 3 of 7 there.
AUDIO_MEASURED = (
    (8.0, "all 7 targets on two seeds, every pair its target (P(B) >= 0.95)"),
    (4.0, "every pair its target (P(B) >= 0.93), pitch 5.9 cents against 5"),
    (2.0, "6 of 12 pairs a blend (P(B) down to 0.78)"),
)
AUDIO_ENOUGH_MINUTES = 4.0


def corpus_minutes(corpus_dir: Path) -> dict[str, float]:
    """Minutes of audio per instrument in a corpus, every split (an import's sounding minutes)."""
    manifest = pd.read_csv(Path(corpus_dir) / "manifest.csv")
    column = "sound_seconds" if "sound_seconds" in manifest else "seconds"
    return {k: float(v) / 60 for k, v in manifest.groupby("instrument")[column].sum().items()}


def audio_line(minutes: dict[str, float]) -> str:
    """How much audio this corpus gives the morph per instrument, against what was measured."""
    name, least = min(minutes.items(), key=lambda kv: kv[1])
    if least >= AUDIO_ENOUGH_MINUTES:
        verdict = (
            f"enough: {AUDIO_ENOUGH_MINUTES:g} min gave every pair its target where the recipe "
            "suits the sounds (where it does not, more audio did not help)"
        )
    else:
        verdict = (
            f"under the {AUDIO_ENOUGH_MINUTES:g} min that gave every pair its target: expect "
            "blends; more audio of that instrument is the first thing to add"
        )
    measured = "; ".join(f"{m:g} min: {what}" for m, what in AUDIO_MEASURED)
    return (
        f"audio, for a listener: {least:.1f} min per instrument at the least ({name}), {verdict} "
        f"(make train's default on another corpus, minutes per instrument: {measured})"
    )


def summary_line(s: dict) -> str:
    """One line for the log."""
    if not s.get("n_pairs"):
        return f"morph: no instrument pair; resynthesis accuracy {s['resynthesis_accuracy']:.2f}"
    # three decimals where a target sits at the second: 0.898 must not read as 0.90 beside a
    # target counted as missed
    return (
        f"morph: {s['n_pairs']} pairs; P(B) at alpha=0 <= {s['p_b_start_all_max']:.3f}, "
        f"at alpha=1 >= {s['p_b_end_all_min']:.3f} (every test clip; "
        f"path clips {s['p_b_start_max']:.3f}, {s['p_b_end_min']:.3f}); "
        f"Spearman >= {s['spearman_min']:.3f}; "
        f"largest step {s['max_step_max']:.3f}; conversion {s['conversion_accuracy']:.2f}; "
        f"resynthesis {s['resynthesis_accuracy']:.2f} (worst instrument "
        f"{s['resynthesis_accuracy_min']:.2f}); f0 worst {s['f0_cents_median_worst']:.1f} cents; "
        f"targets met {s['targets_met']}/{s['targets_checked']}"
    )


def write_morph(
    out_dir: Path,
    model,
    items_by_instrument: dict[str, list[dict[str, torch.Tensor]]],
    centroids: dict[str, np.ndarray],
    *,
    classifier,
    features: FeatureSettings,
    settings: MorphSettings = MorphSettings(),
    title: str = "",
    latent: dict | None = None,
) -> dict:
    """``morph_study`` written into ``out_dir``: morph.csv (pairs), morph_curves.csv,
    morph_renders.csv, morph_summary.json, morph.png. Returns the summary."""
    t0 = time.time()
    pairs, curves, renders, summary = morph_study(
        model,
        items_by_instrument,
        centroids,
        classifier=classifier,
        features=features,
        settings=settings,
        latent=latent,
    )
    summary["seconds"] = time.time() - t0
    summary["path"] = settings.path
    summary["even"] = bool(len(pairs) and pairs["even"].all())
    out_dir = Path(out_dir)
    save_csv(out_dir / "morph.csv", pairs)
    save_csv(out_dir / "morph_curves.csv", curves)
    save_csv(out_dir / "morph_renders.csv", renders)
    save_json(out_dir / "morph_summary.json", summary)
    plot_morph(curves, renders, out_dir / "morph.png", title=title or summary_line(summary)[:120])
    return summary


def test_items_by_instrument(dm, split: str = "test") -> dict[str, list[dict[str, torch.Tensor]]]:
    """A data module's examples of ``split`` (falling back to valid, then train, when empty),
    grouped by instrument name."""
    for name in (split, "valid", "train"):
        ds = dm.datasets.get(name)
        if ds is not None and len(ds):
            break
    out: dict[str, list] = {}
    for item in ds.items:
        out.setdefault(dm.instruments[int(item["instrument_id"])], []).append(item)
    return out


def measure_morph(
    out_dir: Path,
    model,
    dm,
    latent: dict,
    *,
    settings: MorphSettings,
    classifier,
    features: FeatureSettings,
) -> dict:
    """The morph table of ``model`` on ``dm``'s test split into ``out_dir``: the one measurement
    that the end of training and ``python -m ddsp_morph.morph`` both run. ``latent``: the
    model's latent summary; the path speeds ``settings`` needs are measured where it has none
    (a checkpoint written before they were stored, or a path kind it does not store)."""
    if settings.even and not (latent.get("path_speed") or {}).get(settings.path):
        dm.setup("fit")
        latent = with_speeds(latent, model, dm.datasets["train"], dm.instruments, settings.path)
    centroids = {k: np.asarray(v, np.float32) for k, v in latent["centroids"].items()}
    return write_morph(
        out_dir,
        model,
        test_items_by_instrument(dm),
        centroids,
        classifier=classifier,
        features=features,
        settings=settings,
        latent=latent,
    )
