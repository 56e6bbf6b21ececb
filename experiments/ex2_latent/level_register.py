"""Does a conversion hold its instrument when the performance is played louder, softer, higher
or lower than the corpus plays it? Another SoundFont or recording sets its own levels, and an
unseen phrase its own registers.

Every test clip of A is rendered with each other instrument B's centroid (the morph's α = 1),
its performance changed one way at a time:

- gain g dB: the loudness curve moved by g; the render is scaled back by -g dB before the
  judge hears it (the judge reads absolute log-mel levels: this asks about the timbre only);
- transpose s semitones: f0 scaled by 2 ** (s / 12), loudness kept.

Prints, per condition, the mean P(B) over every conversion, the worst pair's mean over its
clips (the morph target's figure) and that pair.

    python experiments/ex2_latent/level_register.py <run dir> [checkpoint=last]
"""

import sys
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.evaluation.classifier import corpus_classifier
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of
from ddsp_morph.runs import load_run

CONDITIONS = [("as played", 0.0, 0.0), ("gain -6 dB", -6.0, 0.0), ("gain +6 dB", 6.0, 0.0)]
CONDITIONS += [("transpose -3", 0.0, -3.0), ("transpose +3", 0.0, 3.0)]

torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
run_dir = sys.argv[1]
run = load_run(run_dir, checkpoint=sys.argv[2] if len(sys.argv) > 2 else "last")
dm = build_datamodule(run.cfg)
dm.setup("test")
cen = centroids_of(run)
clf = corpus_classifier(Path(run.cfg.data.corpus_dir))
sr = run.model.synth.sample_rate
items = test_items_by_instrument(dm)
names = sorted(items)
print(f"{run_dir}: mean P(B) over every conversion | worst pair (mean over its clips)")
for label, gain_db, semitones in CONDITIONS:
    per_pair: dict[tuple[str, str], list[float]] = {}
    for a in names:
        targets = [b for b in names if b != a]
        zs = np.stack([cen[b] for b in targets]).astype(np.float32)
        for item in items[a]:
            played = dict(item)
            played["loudness_db"] = item["loudness_db"] + gain_db
            played["f0_hz"] = item["f0_hz"] * float(2.0 ** (semitones / 12.0))
            audio = render_many(run.model, played, zs)["audio"] * float(10.0 ** (-gain_db / 20.0))
            for b, x in zip(targets, audio, strict=True):
                per_pair.setdefault((a, b), []).append(clf.proba_of(x, sr)[b])
    means = {k: float(np.mean(v)) for k, v in per_pair.items()}
    worst = min(means, key=means.get)
    overall = float(np.mean([p for v in per_pair.values() for p in v]))
    print(
        f"{label:>13}: {overall:.3f} | {worst[0][:2]}>{worst[1][:2]} {means[worst]:.3f}",
        flush=True,
    )
