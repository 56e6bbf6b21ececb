"""What the judge hears in a conversion: for test clips of A decoded with B's centroid, the
classifier's P(B) and its rival, and the logit margin logit(B) - logit(rival) split by feature
group (log-mel mean, std, delta mean, delta std: ``evaluation.classifier.clip_features``); then
the same split for real clips of B against the same rival, for comparison.

    python experiments/ex2_latent/judge_features.py <run dir> <A> <B> [n clips]
"""

import sys
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.evaluation.classifier import N_MELS, clip_features, corpus_classifier
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of
from ddsp_morph.runs import load_run

GROUPS = ("mean", "std", "delta mean", "delta std")

torch.set_num_threads(1)
run_dir, source, target = sys.argv[1:4]
n_clips = int(sys.argv[4]) if len(sys.argv) > 4 else 6
run = load_run(run_dir, checkpoint="last")
centroid = np.asarray(centroids_of(run)[target], np.float32)
dm = build_datamodule(run.cfg)
dm.setup("test")
clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
items = test_items_by_instrument(dm)


def margin_by_group(x: np.ndarray, a: str, b: str) -> list[float]:
    d = (clf.coef[clf.classes.index(a)] - clf.coef[clf.classes.index(b)]) * (
        (x - clf.mean) / clf.scale
    )
    return [float(d[g * N_MELS : (g + 1) * N_MELS].sum()) for g in range(len(GROUPS))]


def fmt(v: list[float]) -> str:
    return ", ".join(f"{g} {x:+.1f}" for g, x in zip(GROUPS, v, strict=True))


rivals = []
for i, item in enumerate(items[source][:n_clips]):
    audio = render_many(run.model, item, centroid[None])["audio"][0]
    x = clip_features(audio)
    p = clf.predict_proba(x)[0]
    order = [clf.classes[j] for j in np.argsort(p)[::-1]]
    rival = order[0] if order[0] != target else order[1]
    rivals.append(rival)
    print(
        f"{source} clip {i} as {target}: P({target}) {p[clf.classes.index(target)]:.2f}, "
        f"rival {rival}; margin by group: {fmt(margin_by_group(x, target, rival))}"
    )
rival = max(set(rivals), key=rivals.count)
for i, item in enumerate(items[target][:n_clips]):
    x = clip_features(item["audio"].numpy())
    print(f"real {target} clip {i} against {rival}: {fmt(margin_by_group(x, target, rival))}")
