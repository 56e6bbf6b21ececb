"""An instrument classifier trained on real corpus audio (never on model output): logistic
regression on log-mel statistics. Stored as plain arrays (npz), so loading it runs no code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ddsp_morph.data.io import read_audio, save_npz

N_MELS = 64


def log_mel_frames(audio: np.ndarray, sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """64 log-mel bands (dB, 1024-point FFT, 256 hop, from 30 Hz) and which frames sound
    (within 50 dB of the loudest; every frame where fewer than 2 do). Shapes [64, n_frames],
    [n_frames]."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32),
        sr=sample_rate,
        n_fft=1024,
        hop_length=256,
        n_mels=N_MELS,
        fmin=30.0,
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    energy = db.max(axis=0)
    sounding = energy > energy.max() - 50.0
    if sounding.sum() < 2:
        sounding[:] = True
    return db, sounding


def clip_features(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """Mean and std over the clip's sounding frames (within 50 dB of its loudest) of 64
    log-mel bands, and the same of their frame-to-frame deltas. Shape [4 * 64]."""
    db, sounding = log_mel_frames(audio, sample_rate)
    d = db[:, sounding]
    delta = np.diff(d, axis=1) if d.shape[1] > 1 else np.zeros_like(d)
    return np.concatenate([d.mean(1), d.std(1), delta.mean(1), delta.std(1)]).astype(np.float32)


@dataclass
class InstrumentClassifier:
    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [n_classes, n_features]
    intercept: np.ndarray  # [n_classes]

    @classmethod
    def fit(cls, x: np.ndarray, labels: list[str], *, c: float = 1.0) -> InstrumentClassifier:
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(labels))
        y = np.array([classes.index(v) for v in labels])
        mean, scale = x.mean(0), x.std(0) + 1e-6
        lr = LogisticRegression(C=c, max_iter=5000)
        lr.fit((x - mean) / scale, y)
        coef, intercept = lr.coef_, lr.intercept_
        if len(classes) == 2:  # sklearn's binary form: one row; make it a two-class softmax
            coef = np.concatenate([-coef / 2, coef / 2])
            intercept = np.concatenate([-intercept / 2, intercept / 2])
        return cls(classes, mean, scale, coef.astype(np.float64), intercept.astype(np.float64))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def proba_of(self, audio: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
        p = self.predict_proba(clip_features(audio, sample_rate))[0]
        return dict(zip(self.classes, p.astype(float).tolist(), strict=True))

    def save(self, path: Path) -> None:
        save_npz(
            path,
            classes=np.array(self.classes),
            mean=self.mean,
            scale=self.scale,
            coef=self.coef,
            intercept=self.intercept,
        )

    @classmethod
    def load(cls, path: Path) -> InstrumentClassifier:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                [str(c) for c in z["classes"]], z["mean"], z["scale"], z["coef"], z["intercept"]
            )


def train_on_corpus(
    corpus_dir: Path, *, sample_rate: int = 16000
) -> tuple[InstrumentClassifier, dict]:
    """Fit on the corpus's train split, report accuracy on its test split (held-out phrases)."""
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    feats = {}
    for split in ("train", "test"):
        rows = manifest[manifest["split"] == split]
        x = np.stack(
            [
                clip_features(read_audio(corpus_dir / p, expected_rate=sample_rate)[0], sample_rate)
                for p in rows["audio_path"]
            ]
        )
        feats[split] = (x, rows["instrument"].tolist())
    clf = InstrumentClassifier.fit(*feats["train"])
    report = {"n_train": len(feats["train"][1]), "n_test": len(feats["test"][1])}
    for split, (x, labels) in feats.items():
        pred = [clf.classes[i] for i in clf.predict_proba(x).argmax(1)]
        report[f"{split}_accuracy"] = float(
            np.mean([p == t for p, t in zip(pred, labels, strict=True)])
        )
    x, labels = feats["test"]
    pred = [clf.classes[i] for i in clf.predict_proba(x).argmax(1)]
    report["test_confusion"] = {
        t: {
            p: int(sum(1 for a, b in zip(labels, pred, strict=True) if a == t and b == p))
            for p in clf.classes
        }
        for t in clf.classes
    }
    return clf, report


def corpus_classifier(corpus_dir: Path, path: Path | None = None) -> InstrumentClassifier:
    """The corpus's classifier: loaded from ``path`` (default ``<corpus>/classifier.npz``), or
    trained on the corpus's real audio and saved there (with its report as .json) when missing."""
    from ddsp_morph.data.io import save_json

    path = Path(path) if path else Path(corpus_dir) / "classifier.npz"
    if path.exists():
        return InstrumentClassifier.load(path)
    clf, report = train_on_corpus(Path(corpus_dir))
    clf.save(path)
    save_json(path.with_suffix(".json"), report)
    return clf
