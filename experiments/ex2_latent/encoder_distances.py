"""Where the encoder puts each test clip: the distance of its posterior mean to every stored
instrument centroid, its median MIDI pitch over sounding frames (within 30 dB of its loudest),
and the clips whose nearest centroid is another instrument's. Then, per instrument, the
training split's median pitches (percentiles, and how many clips sit at MIDI 76 or above).

    python experiments/ex2_latent/encoder_distances.py <run dir> [checkpoint]
"""

import sys

import numpy as np
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.data.datamodule import median_midi
from ddsp_morph.evaluation.morph_table import test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of
from ddsp_morph.runs import load_run

torch.set_num_threads(1)
run = load_run(sys.argv[1], checkpoint=sys.argv[2] if len(sys.argv) > 2 else "last")
cents = centroids_of(run)
dm = build_datamodule(run.cfg)
dm.setup("fit")
dm.setup("test")
hop = run.model.synth.hop_length
for inst, items in test_items_by_instrument(dm).items():
    for i, it in enumerate(items):
        n = it["f0_hz"].shape[0]
        with torch.no_grad():
            mu = run.model.encode(it["audio"][None, : n * hop], n, it["f0_hz"][None, :n])[0]
        d = {k: float(np.linalg.norm(mu.numpy() - v)) for k, v in cents.items()}
        near = min(d, key=d.get)
        flag = "  <- nearest is " + near if near != inst else ""
        dists = " ".join(f"{k} {v:.2f}" for k, v in d.items())
        print(f"{inst} test clip {i}: MIDI {median_midi(it):.0f}; {dists}{flag}")
names = run.instruments
pitches: dict[str, list[float]] = {n: [] for n in names}
for it in dm.datasets["train"].items:
    pitches[names[int(it["instrument_id"])]].append(median_midi(it))
for name, v in pitches.items():
    v = np.array(v)
    pct = np.percentile(v, [0, 10, 50, 90, 100]).round(1).tolist()
    print(
        f"train {name}: {len(v)} clips, median MIDI percentiles 0/10/50/90/100 {pct}, "
        f">= 76: {(v >= 76).sum()}"
    )
