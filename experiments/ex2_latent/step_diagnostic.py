"""Why P(B) turns over in a few steps: the judge's margin against the path's own shape.

For every ordered pair (A, B) of a run, the morph table's renders (the first ``n`` test clips
of A, slerp from A's centroid to B's, 11 alphas) are described by the corpus classifier's
standardized features, averaged over the clips. Per pair it prints:

- ``margin``: logit(B) - logit(A) at alpha = 1 minus the same at alpha = 0 (the judge's
  logits are linear in its features);
- ``floor``: the largest step of P(B) a path would still have if that logit difference rose
  by the same amount at every step (a two-class logistic, the step straddling 0):
  sigmoid(d / 2) - sigmoid(-d / 2), d = margin / 10 — what the judge's confidence alone costs;
- ``where the features are``: the renders' features projected on the end-to-end direction
  (0 at A's end, 1 at B's) at alpha = 0.3, 0.5, 0.7 — a path that moves evenly reads
  0.3, 0.5, 0.7;
- ``fluct``: how much each mel band moves frame to frame (``dsp.spectral.band_fluctuation``,
  dB, mean over bands and clips) in the render at alpha = 1 against B's real test clips.

    python experiments/ex2_latent/step_diagnostic.py <run dir> [checkpoint] [n clips]
"""

import sys
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.dsp.filters import mel_filterbank
from ddsp_morph.dsp.spectral import band_fluctuation
from ddsp_morph.evaluation.classifier import clip_features, corpus_classifier
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of, path_points
from ddsp_morph.runs import load_run

torch.set_num_threads(1)
run = load_run(sys.argv[1], checkpoint=sys.argv[2] if len(sys.argv) > 2 else "best")
n_clips = int(sys.argv[3]) if len(sys.argv) > 3 else 3
dm = build_datamodule(run.cfg)
dm.setup("test")
clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
cents = {k: np.asarray(v, np.float32) for k, v in centroids_of(run).items()}
items = test_items_by_instrument(dm)
basis = torch.as_tensor(
    mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40, fmin=30.0), dtype=torch.float32
)


def fluct(audio: np.ndarray) -> float:
    return float(band_fluctuation(torch.as_tensor(audio), basis, hop=128).mean())


names = [n for n in clf.classes if n in cents and n in items]
real = {n: fluct(np.stack([it["audio"].numpy() for it in items[n][:n_clips]])) for n in names}
print(
    "| from | to | margin | floor | features at α 0.3 / 0.5 / 0.7 | largest step | fluct α=1 (B real) |"
)
print("|---|---|---|---|---|---|---|")
for a in names:
    for b in names:
        if a == b:
            continue
        zs = path_points(cents[a], cents[b], 11, "slerp")
        feats, p_b, ends = [], [], []
        for item in items[a][:n_clips]:
            audio = render_many(run.model, item, zs)["audio"]
            f = np.stack([clip_features(x) for x in audio])
            feats.append(f)
            p_b.append(clf.predict_proba(f)[:, clf.classes.index(b)])
            ends.append(audio[-1])
        x = (np.mean(feats, axis=0) - clf.mean) / clf.scale
        logits = x @ clf.coef.T + clf.intercept
        diff = logits[:, clf.classes.index(b)] - logits[:, clf.classes.index(a)]
        margin = float(diff[-1] - diff[0])
        d = margin / 10
        floor = 1 / (1 + np.exp(-d / 2)) - 1 / (1 + np.exp(d / 2))
        u = x[-1] - x[0]
        proj = (x - x[0]) @ u / (u @ u)
        step = float(np.abs(np.diff(np.mean(p_b, axis=0))).max())
        print(
            f"| {a} | {b} | {margin:.1f} | {floor:.2f} | {proj[3]:.2f} / {proj[5]:.2f} / "
            f"{proj[7]:.2f} | {step:.2f} | {fluct(np.stack(ends)):.2f} ({real[b]:.2f}) |"
        )
