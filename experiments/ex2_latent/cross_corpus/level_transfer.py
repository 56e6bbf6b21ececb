"""Does the judge hear the level the source brings? Every test clip of a run converted into every
other instrument (its f0 and loudness, the target's centroid), judged by the corpus classifier,
three ways:

- ``none``: the performance as it is (what the morph table measures);
- ``level``: its loudness shifted by the target's mean level minus the source's (the means of
  the train split's loudness over each clip's frames within 30 dB of its loudest), as the DDSP
  timbre-transfer demos adjust loudness to the target model's data;
- ``dist``: the same, and its spread scaled to the target's.

Post hoc: the model is not retrained; the morph tools do not apply any level shift.

    python experiments/ex2_latent/cross_corpus/level_transfer.py <run dir> [<run dir> ...]
"""

import sys

import numpy as np
import pandas as pd
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.dsp.loudness import SOUNDING_DB
from ddsp_morph.evaluation.classifier import corpus_classifier
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.runs import load_run

MODES = ("none", "level", "dist")


def levels(dataset, instruments: list[str]) -> dict[str, tuple[float, float]]:
    """Per instrument: (mean, std) of the loudness over each clip's sounding frames."""
    by: dict[str, list[np.ndarray]] = {}
    for it in dataset.items:
        loud = it["loudness_db"].numpy()
        by.setdefault(instruments[int(it["instrument_id"])], []).append(
            loud[loud > loud.max() - SOUNDING_DB]
        )
    return {
        k: (float(np.concatenate(v).mean()), float(np.concatenate(v).std())) for k, v in by.items()
    }


def shifted(loud: torch.Tensor, a: tuple[float, float], b: tuple[float, float], mode: str):
    if mode == "level":
        return loud + (b[0] - a[0])
    if mode == "dist":
        return (loud - a[0]) * (b[1] / a[1]) + b[0]
    return loud


def study(run_dir: str) -> pd.DataFrame:
    run = load_run(run_dir)
    dm = build_datamodule(run.cfg)
    dm.setup("fit")
    dm.setup("test")
    classifier = corpus_classifier(dm.corpus_dir)
    level = levels(dm.datasets["train"], dm.instruments)
    print(
        run_dir,
        "levels (mean, std dB):",
        {k: (round(m, 1), round(s, 1)) for k, (m, s) in level.items()},
    )
    cents = run.extra["latent"]["centroids"]
    rows = []
    for a, items in test_items_by_instrument(dm).items():
        for it in items:
            for b in sorted(cents):
                if b == a:
                    continue
                z = np.asarray(cents[b], np.float32)[None]
                for mode in MODES:
                    item = {
                        **it,
                        "loudness_db": shifted(it["loudness_db"], level[a], level[b], mode),
                    }
                    audio = render_many(run.model, item, z)["audio"][0]
                    rows.append(
                        {"from": a, "to": b, "mode": mode, "p_b": classifier.proba_of(audio)[b]}
                    )
    return pd.DataFrame(rows)


def main() -> None:
    torch.set_num_threads(1)
    for run_dir in sys.argv[1:]:
        table = study(run_dir).groupby(["from", "to", "mode"]).p_b.mean().unstack()[list(MODES)]
        print(table.round(3).to_string())
        print("min over pairs:", table.min().round(3).to_dict(), "\n")


if __name__ == "__main__":
    main()
