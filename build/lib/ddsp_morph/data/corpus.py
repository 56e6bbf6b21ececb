"""The default corpus: balanced monophonic instruments rendered from a GM SoundFont.

Layout under ``corpus_dir``::

    audio/<instrument>/<example_id>.wav      16 kHz mono, 24-bit PCM (byte-reproducible)
    truth/<instrument>/<example_id>.npz      f0_hz, voiced, velocity, expression (renderer's truth)
    features/<instrument>/<example_id>.npz   f0_hz, periodicity, loudness_db (estimated)
    features/<instrument>/<example_id>.ctx.npz  centroid_hz, flatness_db, mfcc, roughness
    manifest.csv                             one row per example
    stats.json                               corpus statistics of the training split
                                             (and of every conditioning signal)

Every file is written atomically, the manifest last: a killed build leaves no half file, and a
re-run renders only what is missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ddsp_morph.data.features import (
    ContextSettings,
    FeatureSettings,
    cached_context,
    cached_features,
    context_path,
)
from ddsp_morph.data.io import (
    load_npz,
    read_audio,
    save_csv,
    save_json,
    save_npz,
    save_wav,
    sha256_file,
)
from ddsp_morph.data.origin import RENDERED, describe, read_origin, write_origin
from ddsp_morph.data.phrases import INSTRUMENTS, generate_phrase
from ddsp_morph.data.render import PhraseRenderer, resolve_soundfont
from ddsp_morph.dsp.descriptors import CONDITIONING_KEYS, conditioning_transform
from ddsp_morph.errors import AudioFileError, ConfigError, DDSPMorphError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass
class CorpusSettings:
    instruments: Sequence[str] = ("violin", "flute", "trumpet", "clarinet")
    minutes_per_instrument: float = 8.0
    phrase_seconds: float = 8.0
    example_seconds: float = 4.0
    sample_rate: int = 16000
    hop_length: int = 128
    render_rate: int = 48000
    soundfont: str = "auto"
    gain_db: float = 6.0
    seed: int = 0
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1}
    )

    def validate(self) -> None:
        unknown = [i for i in self.instruments if i not in INSTRUMENTS]
        if unknown:
            raise ConfigError(
                f"data.corpus.instruments: unknown {unknown}; known: {sorted(INSTRUMENTS)}"
            )
        if len(set(self.instruments)) != len(self.instruments):
            raise ConfigError(f"data.corpus.instruments: duplicates in {list(self.instruments)}")
        if self.minutes_per_instrument <= 0:
            raise ConfigError(
                f"data.corpus.minutes_per_instrument: must be > 0, got {self.minutes_per_instrument}"
            )
        ratio = self.phrase_seconds / self.example_seconds
        if abs(ratio - round(ratio)) > 1e-9 or ratio < 1:
            raise ConfigError(
                f"data.corpus.phrase_seconds ({self.phrase_seconds}) must be a whole multiple of "
                f"data.example_seconds ({self.example_seconds})"
            )
        if self.n_phrases < 3:
            raise ConfigError(
                f"data.corpus.minutes_per_instrument: {self.minutes_per_instrument} min gives "
                f"{self.n_phrases} phrases per instrument; train/valid/test need at least 3"
            )

    @property
    def n_phrases(self) -> int:
        return int(np.ceil(self.minutes_per_instrument * 60.0 / self.phrase_seconds))

    def identity(self, soundfont_sha256: str) -> dict:
        """What determines the corpus: a manifest made with other values is another corpus."""
        return {
            "instruments": list(self.instruments),
            "minutes_per_instrument": self.minutes_per_instrument,
            "phrase_seconds": self.phrase_seconds,
            "example_seconds": self.example_seconds,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "render_rate": self.render_rate,
            "gain_db": self.gain_db,
            "seed": self.seed,
            "soundfont_sha256": soundfont_sha256,
            "split_fractions": dict(self.split_fractions),
        }


def assign_splits(
    n_phrases: int, fractions: dict[str, float], rng: np.random.Generator
) -> list[str]:
    """Split phrases (never examples) so that no phrase is on two sides; each split gets >= 1."""
    n_valid = max(1, int(round(n_phrases * fractions.get("valid", 0.1))))
    n_test = max(1, int(round(n_phrases * fractions.get("test", 0.1))))
    n_train = n_phrases - n_valid - n_test
    if n_train < 1:
        raise ConfigError(f"data.corpus: {n_phrases} phrases cannot fill train/valid/test")
    labels = ["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test
    order = rng.permutation(n_phrases)
    out = [""] * n_phrases
    for label, idx in zip(labels, order, strict=True):
        out[int(idx)] = label
    return out


def _phrase_seed(seed: int, instrument: str, phrase: int) -> int:
    digest = hashlib.sha256(f"{seed}/{instrument}/{phrase}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def build_corpus(
    settings: CorpusSettings, corpus_dir: Path, *, progress: bool = True
) -> pd.DataFrame:
    """Render the corpus into ``corpus_dir`` (skipping what is already there) and write the manifest."""
    settings.validate()
    soundfont = resolve_soundfont(settings.soundfont)
    sf_sha = sha256_file(soundfont)
    identity = settings.identity(sf_sha)
    manifest_path = corpus_dir / "manifest.csv"
    origin = read_origin(corpus_dir)
    wanted = f"a render of {soundfont.name}"
    if origin is not None and origin["kind"] != RENDERED:
        raise DDSPMorphError(
            f"{corpus_dir}: holds {describe(origin)}; {wanted} is not written into it — "
            "choose another data.corpus.name (for an imported corpus, `make data` needs no "
            "SOURCE: it checks or resumes that import)"
        )
    if origin is not None:
        differ = [k for k in identity if origin.get(k) != identity[k]]
        if differ:
            raise DDSPMorphError(
                f"{corpus_dir}: holds {describe(origin)} made with other settings "
                f"({', '.join(differ)}) than {wanted} asked for now; choose another "
                "data.corpus.name or delete that folder"
            )
        if manifest_path.exists():
            log.info("corpus exists at %s, reusing it", corpus_dir)
            return pd.read_csv(manifest_path)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    write_origin(corpus_dir, {"kind": RENDERED, "soundfont": soundfont.name, **identity})
    per_phrase = int(round(settings.phrase_seconds / settings.example_seconds))
    example_samples = int(round(settings.example_seconds * settings.sample_rate))
    example_samples -= example_samples % settings.hop_length
    example_frames = example_samples // settings.hop_length
    rows = []
    total = len(settings.instruments) * settings.n_phrases
    bar = tqdm(total=total, desc="render corpus", unit="phrase", disable=not progress)
    for instrument in settings.instruments:
        spec = INSTRUMENTS[instrument]
        renderer = None
        splits = assign_splits(
            settings.n_phrases,
            settings.split_fractions,
            np.random.default_rng(_phrase_seed(settings.seed, instrument, -1)),
        )
        for p in range(settings.n_phrases):
            ids = [f"{instrument}_{p:04d}_{e}" for e in range(per_phrase)]
            audio_paths = [Path("audio") / instrument / f"{i}.wav" for i in ids]
            truth_paths = [Path("truth") / instrument / f"{i}.npz" for i in ids]
            done = all(
                (corpus_dir / a).exists() and load_npz(corpus_dir / t) is not None
                for a, t in zip(audio_paths, truth_paths, strict=True)
            )
            if not done:
                if renderer is None:
                    renderer = PhraseRenderer(
                        soundfont,
                        spec["program"],
                        sample_rate=settings.sample_rate,
                        render_rate=settings.render_rate,
                        gain_db=settings.gain_db,
                    )
                rng = np.random.default_rng(_phrase_seed(settings.seed, instrument, p))
                phrase = generate_phrase(
                    rng, low=spec["low"], high=spec["high"], seconds=settings.phrase_seconds
                )
                out = renderer.render(phrase, hop_length=settings.hop_length)
                for e in range(per_phrase):
                    s0, f0_ = e * example_samples, e * example_frames
                    audio = np.zeros(example_samples, np.float32)
                    chunk = out.audio[s0 : s0 + example_samples]
                    audio[: len(chunk)] = chunk
                    sl = slice(f0_, f0_ + example_frames)
                    pad = example_frames - len(out.f0_hz[sl])
                    save_npz(
                        corpus_dir / truth_paths[e],
                        f0_hz=np.pad(out.f0_hz[sl], (0, pad)),
                        voiced=np.pad(out.voiced[sl], (0, pad)),
                        velocity=np.pad(out.velocity[sl], (0, pad)),
                        expression=np.pad(out.expression[sl], (0, pad)),
                    )
                    save_wav(
                        corpus_dir / audio_paths[e], audio, settings.sample_rate, subtype="PCM_24"
                    )
            for e in range(per_phrase):
                rows.append(
                    {
                        "example_id": ids[e],
                        "instrument": instrument,
                        "program": spec["program"],
                        "phrase_id": f"{instrument}_{p:04d}",
                        "split": splits[p],
                        "audio_path": str(audio_paths[e]),
                        "truth_path": str(truth_paths[e]),
                        "feature_path": str(Path("features") / instrument / f"{ids[e]}.npz"),
                        "n_samples": example_samples,
                        "sample_rate": settings.sample_rate,
                        "seconds": example_samples / settings.sample_rate,
                        "soundfont": soundfont.name,
                        "soundfont_sha256": sf_sha,
                        "seed": settings.seed,
                    }
                )
            bar.update(1)
    bar.close()
    manifest = pd.DataFrame(rows)
    save_csv(manifest_path, manifest)
    return manifest


def extract_corpus_features(
    corpus_dir: Path,
    settings: FeatureSettings,
    *,
    context: ContextSettings | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Cache features (f0, periodicity, loudness) and context features (centroid, flatness,
    MFCC, roughness) for every example of the manifest; write stats.json.

    Each example's entries are written atomically, so an interrupted run resumes where it
    stopped. Unreadable audio is skipped and reported, never silently dropped; the returned
    manifest holds the usable examples.

    Returns:
        (manifest of usable examples, [(file, reason), ...] skipped).
    """
    context = context or ContextSettings(
        sample_rate=settings.sample_rate, hop_length=settings.hop_length
    )
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    skipped: list[tuple[str, str]] = []
    keep = []
    n_cached = n_ctx_cached = 0
    train: list[dict[str, np.ndarray]] = []
    bar = tqdm(
        manifest.itertuples(),
        total=len(manifest),
        desc="features",
        unit="example",
        disable=not progress,
    )
    for row in bar:
        try:
            audio, _ = read_audio(corpus_dir / row.audio_path, expected_rate=settings.sample_rate)
        except AudioFileError as e:
            log.warning("skipped: %s", e)
            skipped.append((str((corpus_dir / row.audio_path).absolute()), str(e)))
            continue
        feats, cached = cached_features(audio, corpus_dir / row.feature_path, settings)
        ctx, ctx_cached = cached_context(
            audio, context_path(corpus_dir / row.feature_path), context
        )
        n_cached += cached
        n_ctx_cached += ctx_cached
        keep.append(row.Index)
        if row.split == "train":
            train.append({**feats, **ctx})
    log.info(
        "features: %d computed, %d reused from cache; context features: %d computed, %d reused; "
        "%d skipped",
        len(keep) - n_cached,
        n_cached,
        len(keep) - n_ctx_cached,
        n_ctx_cached,
        len(skipped),
    )
    if not keep:
        raise DDSPMorphError(f"{corpus_dir}: no usable example ({len(skipped)} skipped)")
    if train:
        write_stats(corpus_dir, train, settings, context)
    if skipped:
        for path, reason in skipped:
            print(f"skipped {path}: {reason}")
    return manifest.loc[keep].reset_index(drop=True), skipped


def write_stats(
    corpus_dir: Path,
    train: list[dict[str, np.ndarray]],
    settings: FeatureSettings,
    context: ContextSettings,
) -> None:
    """stats.json: statistics of the training split's frames — loudness and f0 ranges, and the
    mean and std of every conditioning signal on the scale the decoder sees it."""
    ld = np.concatenate([t["loudness_db"] for t in train])
    f = np.concatenate([t["f0_hz"] for t in train])
    voiced = np.concatenate([t["f0_hz"][t["periodicity"] >= 0.5] for t in train])
    if voiced.size == 0:
        voiced = f
    loud_voiced = np.concatenate(
        [t["loudness_db"][(t["periodicity"] >= 0.5) & (t["loudness_db"] > -70)] for t in train]
    )
    if loud_voiced.size == 0:
        loud_voiced = ld
    conditioning = {}
    for name, key in CONDITIONING_KEYS.items():
        if not all(key in t for t in train):
            continue
        values = np.concatenate([t[key].reshape(len(t[key]), -1) for t in train])
        values = conditioning_transform(name, torch.from_numpy(values).double()).numpy()
        conditioning[name] = {
            "mean": values.mean(0).tolist(),
            "std": (values.std(0) + 1e-6).tolist(),
        }
    save_json(
        corpus_dir / "stats.json",
        {
            "loudness_db_mean": float(ld.mean()),
            "loudness_db_std": float(ld.std() + 1e-6),
            "loudness_db_min": float(ld.min()),
            "loudness_db_max": float(ld.max()),
            "loudness_db_p05": float(np.percentile(ld, 5)),
            "loudness_db_p95": float(np.percentile(ld, 95)),
            # the level of the notes (voiced frames above -70 dB): audio in maps onto it
            "loudness_db_voiced_mean": float(loud_voiced.mean()),
            "f0_hz_min": float(f.min()),
            "f0_hz_max": float(f.max()),
            # the range the model learned to play: voiced frames, 0.5th..99.5th percentile
            "f0_hz_voiced_p005": float(np.percentile(voiced, 0.5)),
            "f0_hz_voiced_p995": float(np.percentile(voiced, 99.5)),
            "feature_settings": settings.key(),
            "context_settings": context.key(),
            "conditioning": conditioning,
        },
    )
