"""Conversions with a register-matched target: each test clip of A decoded with B's centroid
and with the mean posterior of the K training clips of B nearest to it in median MIDI pitch.
Asks whether the clips that fail a conversion (high clarinet as violin) fail for want of a
z of B's matching register.

    python experiments/ex2_latent/register_targets.py <run dir> [K=8]
"""

import sys
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.data.datamodule import median_midi
from ddsp_morph.evaluation.classifier import corpus_classifier
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of
from ddsp_morph.latent.summary import encode_dataset
from ddsp_morph.runs import load_run

torch.set_num_threads(1)
run = load_run(sys.argv[1], checkpoint="last")
dm = build_datamodule(run.cfg)
dm.setup("fit")
dm.setup("test")
cen = {k: np.asarray(v, np.float32) for k, v in centroids_of(run).items()}
clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
sr = run.model.synth.sample_rate
enc = encode_dataset(run.model, dm.datasets["train"])
mu, ids = enc["mu"], enc["instrument_id"]
reg = np.array([median_midi(it) for it in dm.datasets["train"].items])
names = dm.instruments
K = int(sys.argv[2]) if len(sys.argv) > 2 else 8
res = {}
for a, items in test_items_by_instrument(dm).items():
    for it in items:
        m = median_midi(it)
        for b in names:
            if b == a:
                continue
            sel = np.where(ids == names.index(b))[0]
            near = sel[np.argsort(np.abs(reg[sel] - m))[:K]]
            zr = mu[near].mean(0)
            out = render_many(run.model, it, np.stack([cen[b], zr]).astype(np.float32))["audio"]
            p = [clf.proba_of(x, sr)[b] for x in out]
            res.setdefault((a, b), []).append((m, p[0], p[1]))
for (a, b), v in sorted(res.items()):
    v = np.array(v)
    low = v[np.argsort(v[:, 1])[:2]]
    print(
        f"{a[:2]}>{b[:2]} global {v[:, 1].mean():.3f} register{K} {v[:, 2].mean():.3f} | worst clips (MIDI, global, register): "
        + "; ".join(f"{x[0]:.0f} {x[1]:.2f} {x[2]:.2f}" for x in low),
        flush=True,
    )
