"""What keeps a conversion from reading as its target? For pairs of a run, the corpus classifier's
logit of the target minus that of the source, split by the judge's feature groups (log-mel
mean, std, and the mean and std of their frame-to-frame deltas), averaged over the test clips:
for the real clips of both, the target's resyntheses and the conversions; and how far the
conversion's mean log-mel lies from the real target's, in eight groups of eight mel bands
(dB; the real source's distance beside it).

    python experiments/ex2_latent/cross_corpus/judge_levels.py <run dir> [a:b ...]
"""

import sys

import numpy as np
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.evaluation.classifier import N_MELS, clip_features, corpus_classifier
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.runs import load_run

# clip_features: mean, std, delta mean, delta std, N_MELS bands each
GROUPS = {
    g: slice(i * N_MELS, (i + 1) * N_MELS) for i, g in enumerate(("mean", "std", "dmean", "dstd"))
}
PAIRS = ["trumpet:flute", "flute:trumpet", "clarinet:flute", "flute:clarinet", "clarinet:trumpet"]


def main() -> None:
    torch.set_num_threads(1)
    run = load_run(sys.argv[1])
    pairs = [tuple(p.split(":")) for p in (sys.argv[2:] or PAIRS)]
    dm = build_datamodule(run.cfg)
    dm.setup("test")
    clf = corpus_classifier(dm.corpus_dir)
    items = test_items_by_instrument(dm)
    cents = run.extra["latent"]["centroids"]
    names = sorted(cents)
    zs = np.stack([np.asarray(cents[n], np.float32) for n in names])
    feats: dict[tuple[str, str], list[np.ndarray]] = {}
    for a in {p[0] for p in pairs} | {p[1] for p in pairs}:
        for it in items[a]:
            feats.setdefault(("real", a), []).append(clip_features(it["audio"].numpy()))
            own = render_many(run.model, it, None)["audio"][0]
            feats.setdefault(("resynthesis", a), []).append(clip_features(own))
            for b, audio in zip(names, render_many(run.model, it, zs)["audio"], strict=True):
                feats.setdefault((a, b), []).append(clip_features(audio))
    mean = {k: np.mean(v, axis=0) for k, v in feats.items()}
    for a, b in pairs:
        ia, ib = clf.classes.index(a), clf.classes.index(b)
        print(f"== {a} -> {b}: logit({b}) - logit({a}) by feature group")
        for label, key in [
            (f"real {b}", ("real", b)),
            (f"resynthesis {b}", ("resynthesis", b)),
            ("conversion", (a, b)),
            (f"real {a}", ("real", a)),
        ]:
            contrib = ((mean[key] - clf.mean) / clf.scale) * (clf.coef[ib] - clf.coef[ia])
            print(
                f"  {label:18s}"
                + " ".join(f"{g} {contrib[s].sum():+6.1f}" for g, s in GROUPS.items())
            )
        for label, key in [("conversion", (a, b)), (f"real {a}", ("real", a))]:
            d = mean[key][GROUPS["mean"]] - mean[("real", b)][GROUPS["mean"]]
            bands = [round(float(x.mean()), 1) for x in np.array_split(d, 8)]
            print(f"  {label} - real {b}, mean log-mel (dB, low to high): {bands}")


if __name__ == "__main__":
    main()
