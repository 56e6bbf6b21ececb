"""A second judge for a run's conversions, of another family than the corpus classifier and the
conversion critic (both read a clip's band statistics): each frame's MFCCs c1..c19 and their
change from the frame before (c0, the level, left out), a logistic regression over single
frames of the corpus's real train audio, and a clip's P(instrument) from the mean of its
sounding frames' log-probabilities. It hears the spectral envelope frame by frame; neither the
level nor a clip's statistics. Every test clip of the run's corpus converted into every other
instrument (its centroid z, as the morph table does) is judged by both.

    python experiments/ex2_latent/cross_corpus/second_judge.py <run dir> [corpus dir]
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ddsp_morph.build import build_datamodule
from ddsp_morph.data.io import read_audio
from ddsp_morph.evaluation.classifier import corpus_classifier, log_mel_frames
from ddsp_morph.evaluation.morph_table import render_many, test_items_by_instrument
from ddsp_morph.latent.geometry import centroids_of
from ddsp_morph.runs import load_run

SR, N_MFCC, FRAMES_PER_CLIP = 16000, 20, 200


def frame_features(audio: np.ndarray) -> np.ndarray:
    """Sounding frames (within 50 dB of the loudest) x [c1..c19, their change]."""
    import librosa

    db, sounding = log_mel_frames(audio, SR)
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=N_MFCC)[1:]
    delta = np.diff(mfcc, axis=1, prepend=mfcc[:, :1])
    x = np.concatenate([mfcc, delta]).T
    keep = sounding & (np.arange(len(sounding)) > 0)
    return x[keep] if keep.sum() >= 2 else x


class FrameJudge:
    def __init__(self, paths: list[Path], labels: list[str], seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(seed)
        xs, ys = [], []
        self.classes = sorted(set(labels))
        for p, label in zip(paths, labels, strict=True):
            f = frame_features(read_audio(p, expected_rate=SR)[0])
            take = rng.choice(len(f), min(len(f), FRAMES_PER_CLIP), replace=False)
            xs.append(f[take])
            ys += [self.classes.index(label)] * len(take)
        x = np.concatenate(xs)
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6
        self.lr = LogisticRegression(C=1.0, max_iter=3000).fit((x - self.mean) / self.scale, ys)

    def proba_of(self, audio: np.ndarray) -> dict[str, float]:
        f = (frame_features(audio) - self.mean) / self.scale
        logp = self.lr.predict_log_proba(f).mean(0)
        p = np.exp(logp - logp.max())
        return dict(zip(self.classes, (p / p.sum()).tolist(), strict=True))


def main() -> None:
    torch.set_num_threads(1)
    run = load_run(sys.argv[1], checkpoint="last")
    corpus = Path(sys.argv[2] if len(sys.argv) > 2 else run.cfg.data.corpus_dir)
    man = pd.read_csv(corpus / "manifest.csv")
    train = man[man.split == "train"]
    judge = FrameJudge([corpus / p for p in train.audio_path], train.instrument.tolist())
    first = corpus_classifier(corpus)
    test = man[man.split == "test"]
    real = [
        max(
            judge.proba_of(read_audio(corpus / p, expected_rate=SR)[0]).items(),
            key=lambda kv: kv[1],
        )[0]
        == inst
        for p, inst in zip(test.audio_path, test.instrument, strict=True)
    ]
    print(f"second judge, real test clips: accuracy {np.mean(real):.3f} ({len(real)} clips)")
    cents = centroids_of(run)
    names = sorted(cents)
    run.cfg.data.corpus_dir = str(corpus)
    dm = build_datamodule(run.cfg)
    dm.setup("test")
    rows = []
    for src, items in test_items_by_instrument(dm).items():
        for item in items:
            out = render_many(run.model, item, np.stack([cents[n] for n in names]))["audio"]
            for tgt, audio in zip(names, out, strict=True):
                if tgt == src:
                    continue
                rows.append(
                    {
                        "pair": f"{src} -> {tgt}",
                        "corpus classifier": first.proba_of(audio, SR)[tgt],
                        "second judge": judge.proba_of(audio)[tgt],
                    }
                )
    df = pd.DataFrame(rows).groupby("pair").mean()
    print("P(B) at alpha = 1, mean over the test clips of A:")
    print(df.round(3).to_string())
    print("worst pair:", {c: f"{df[c].min():.3f} ({df[c].idxmin()})" for c in df.columns})


if __name__ == "__main__":
    main()
