"""The morph table of one trained run under other timbre-speed tables (study 13): the same
weights and centroids, only the spacing of the alphas along each path changes.

    python experiments/ex2_latent/speed_tables.py <run dir> [variant ...]

Variants (default: stored source:4):
  stored              the table saved with the run's last checkpoint (for runs before study 13:
                      one table per unordered pair, the first clip of A and of B summed)
  plain               no table: alphas equally spaced in z
  source:K[:S[:P]]    per ordered pair, K clips of A (S seconds, P points), as the project now
                      measures it (``latent.speeds.path_speeds``)
  judge:K             per ordered pair, the corpus classifier's P(B) - P(A) on K clips of A
                      (spacing by the judge itself; recorded as a negative result)

Prints, per variant: the largest step over the 12 pairs (mean curve of the first 3 test clips
of A), its mean over pairs, the worst single clip's step, the median centroid and HNR step
ratios, and the three pairs with the largest steps. Noise seed: ``SEED`` (default 0); clips
per path: ``N_EXAMPLES`` (default 3, the tables of study 13; ``make train`` renders 12).
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.build import build_datamodule, feature_settings
from ddsp_morph.evaluation.classifier import clip_features, corpus_classifier
from ddsp_morph.evaluation.morph_table import MorphSettings, morph_study, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of, path_points
from ddsp_morph.latent.speeds import dry_render, path_speeds, repeated_clips
from ddsp_morph.runs import load_run

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
KIND = "slerp"
run = load_run(sys.argv[1], checkpoint="last")
variants = sys.argv[2:] or ["stored", "source:4"]
dm = build_datamodule(run.cfg)
dm.setup("fit")
dm.setup("test")
model, lat = run.model.eval(), run.extra["latent"]
cen = {k: np.asarray(v, np.float32) for k, v in centroids_of(run).items()}
clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
train = dm.datasets["train"]
names = sorted(cen)


def clips_of(name: str, k: int) -> list[dict]:
    return [it for it in train.items if dm.instruments[int(it["instrument_id"])] == name][:k]


@torch.no_grad()
def judge_table(k: int, n: int = 17, seconds: float = 1.5) -> dict:
    hop, sr = model.synth.hop_length, model.synth.sample_rate
    out = {}
    for a in names:
        for b in names:
            if a == b:
                continue
            zs = torch.as_tensor(path_points(cen[a], cen[b], n, KIND), dtype=torch.float32)
            change = np.zeros(n - 1)
            for item in clips_of(a, k):
                batch = {**repeated_clips([item], n, int(seconds * sr / hop), hop), "z": zs}
                audio = dry_render(model, batch).numpy()
                p = clf.predict_proba(np.stack([clip_features(x, sr) for x in audio]))
                q = p[:, clf.classes.index(b)] - p[:, clf.classes.index(a)]
                change += np.abs(np.diff(q))
            u = np.concatenate([[0.0], np.cumsum(change)])
            out[f"{a}>{b}"] = (u / u[-1]).tolist()
    return out


def table(variant: str) -> dict | None:
    kind, *args = variant.split(":")
    if kind == "stored":
        return lat["path_speed"][KIND]
    if kind == "plain":
        return None
    k = int(args[0])
    s = float(args[1]) if len(args) > 1 else 1.5
    p = int(args[2]) if len(args) > 2 else 17
    if kind == "source":
        return path_speeds(
            model,
            train,
            dm.instruments,
            lat["centroids"],
            kind=KIND,
            clips=k,
            seconds=s,
            n_points=p,
        )
    if kind == "judge":
        return judge_table(k)
    raise SystemExit(f"unknown variant {variant!r}")


items = test_items_by_instrument(dm)
seed = int(os.environ.get("SEED", "0"))
n_examples = int(os.environ.get("N_EXAMPLES", "3"))  # test clips of A whose path is rendered
for variant in variants:
    t = time.time()
    sp = table(variant)
    latent = {**lat, "path_speed": {KIND: sp}} if sp is not None else None
    pairs, _, _, s = morph_study(
        model,
        items,
        cen,
        classifier=clf,
        features=feature_settings(run.cfg),
        settings=MorphSettings(path=KIND, even=sp is not None, seed=seed, n_examples=n_examples),
        latent=latent,
    )
    worst = pairs.sort_values("max_step", ascending=False).iloc[:3]
    print(
        f"{variant:16s} largest step {s['max_step_max']:.3f}, mean over pairs "
        f"{pairs['max_step'].mean():.3f}, worst clip {pairs['max_step_worst_example'].max():.2f}, "
        f"centroid ratio {s['centroid_step_ratio_median']:.2f}, HNR ratio "
        f"{s['hnr_step_ratio_median']:.2f} | "
        + "; ".join(
            f"{r['from'][:2]}>{r['to'][:2]} {r['max_step']:.2f}" for _, r in worst.iterrows()
        )
        + f" ({time.time() - t:.0f} s)",
        flush=True,
    )
