"""Which part of the judge hears the instrument? The corpus classifier (log-mel mean and std
over sounding frames + the same of their frame-to-frame deltas) against a "static" judge with
the first half only (the spectral timbre, no temporal change), both trained on the corpus's
real train audio, scoring every test clip's resynthesis and conversions of a run.

    python experiments/ex2_latent/judge_diagnostic.py <run dir> <corpus dir>
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.data.io import read_audio
from ddsp_morph.evaluation.classifier import InstrumentClassifier, clip_features
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of
from ddsp_morph.runs import load_run

torch.set_num_threads(1)
run = load_run(sys.argv[1], checkpoint="last")
corpus = Path(sys.argv[2])
man = pd.read_csv(corpus / "manifest.csv")


def feats(a, which):
    f = clip_features(a)
    return f[:128] if which == "static" else f


clfs = {}
for which in ("static", "full"):
    tr = man[man.split == "train"]
    x = np.stack(
        [feats(read_audio(corpus / p, expected_rate=16000)[0], which) for p in tr.audio_path]
    )
    clfs[which] = InstrumentClassifier.fit(x, tr.instrument.tolist())
    te = man[man.split == "test"]
    xt = np.stack(
        [feats(read_audio(corpus / p, expected_rate=16000)[0], which) for p in te.audio_path]
    )
    pred = [clfs[which].classes[i] for i in clfs[which].predict_proba(xt).argmax(1)]
    print(
        which, "real test acc", np.mean([a == b for a, b in zip(pred, te.instrument, strict=True)])
    )
cents = centroids_of(run)
run.cfg.data.corpus_dir = str(corpus)
dm = build_datamodule(run.cfg)
dm.setup("test")
items = test_items_by_instrument(dm)
rows = []
for src, its in items.items():
    for it in its:
        out = render_many(run.model, it, np.stack([cents[n] for n in sorted(cents)]))["audio"]
        own = render_many(run.model, it, None)["audio"][0]
        for tgt, a in list(zip(sorted(cents), out, strict=True)) + [("resynthesis", own)]:
            want = src if tgt == "resynthesis" else tgt
            r = {"source": src, "target": tgt}
            for which, c in clfs.items():
                p = c.predict_proba(feats(a, which))[0]
                r[which] = c.classes[int(p.argmax())] == want
            rows.append(r)
df = pd.DataFrame(rows)
print(df.groupby(["source", "target"])[["static", "full"]].mean().round(2).to_string())
conv = df[(df.target != "resynthesis") & (df.target != df.source)]
print("conversion static", conv.static.mean(), "full", conv.full.mean())
print(
    "into violin static",
    conv[conv.target == "violin"].static.mean(),
    "full",
    conv[conv.target == "violin"].full.mean(),
)
