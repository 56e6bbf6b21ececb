"""Import a folder of recordings into a corpus: ``<source>/<instrument>/*.{wav,flac,ogg,mp3,aiff}``.

Per file: decode, downmix, resample (soxr), find the sounding stretches, join them across
their rests (a rest longer than ``max_rest_seconds`` is shortened to it), cut the joined audio
into examples, pad the last piece with silence that a mask marks (``valid_samples``; the loss
and the metrics ignore it), drop clipped examples; then the shared feature extraction drops mostly-unvoiced examples; the split into
train/valid/test is by source file, so no recording is on two sides.

Nothing is lost and nothing is half-written: every example wav is written atomically, and a
per-file record (``sources/<instrument>/<file>.json``, with the source's SHA-256) is written
after them, so a killed import resumes at the first file without a record and ends with the
same manifest as an uninterrupted run. A bad file is skipped with a one-line reason and listed
in ``skipped.csv``; the import fails only when nothing usable remains.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ddsp_morph.data.corpus import extract_corpus_features, write_stats  # noqa: E402
from ddsp_morph.data.features import ContextSettings, FeatureSettings, context_path  # noqa: E402
from ddsp_morph.data.io import (  # noqa: E402
    load_npz,
    read_audio,
    save_csv,
    save_json,
    save_wav,
    sha256_file,
)
from ddsp_morph.errors import AudioFileError, ConfigError, DDSPMorphError  # noqa: E402

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
RECORD_VERSION = 2  # v2: stretches joined across rests, last piece padded


@dataclass
class ImportSettings:
    sample_rate: int = 16000
    hop_length: int = 128
    example_seconds: float = 4.0
    silence_db: float = -45.0  # frames quieter than this (dB re the file's peak) are silence
    min_silence_seconds: float = 0.3  # a silence at least this long is a rest between stretches
    max_rest_seconds: float = 0.5  # rests are kept up to this long when stretches are joined
    min_piece_seconds: float = 0.5  # a last piece shorter than this is not padded into an example
    clip_level: float = 0.999  # |x| at or above this counts as a clipped sample
    max_clipped_fraction: float = 0.001  # examples with more clipped samples are dropped
    min_voiced_fraction: float = 0.3  # examples with fewer voiced frames are dropped
    voiced_threshold: float = 0.5  # CREPE periodicity for "voiced"
    balance: str = "equal"  # equal: sample instruments equally; cap: cut train at the smallest
    min_minutes_warning: float = 5.0
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1}
    )

    def validate(self) -> None:
        if self.balance not in ("equal", "cap"):
            raise ConfigError(
                f"data.source.balance: expected 'equal' or 'cap', got {self.balance!r}"
            )
        if self.example_seconds <= 0:
            raise ConfigError(f"data.example_seconds: must be > 0, got {self.example_seconds}")
        if self.max_rest_seconds < 0:
            raise ConfigError(
                f"data.source.max_rest_seconds: must be >= 0, got {self.max_rest_seconds}"
            )
        if not 0 < self.min_piece_seconds <= self.example_seconds:
            raise ConfigError(
                f"data.source.min_piece_seconds: must be in (0, example_seconds="
                f"{self.example_seconds:g}], got {self.min_piece_seconds}"
            )


def scan_source(source: Path) -> dict[str, list[Path]]:
    """instrument -> its audio files (sorted), linked sub-folders followed. Other files are
    ignored; links that lead nowhere are listed by ``broken_links``."""
    if not source.is_dir():
        raise DDSPMorphError(f"{source}: no such folder (expected <folder>/<instrument>/*.wav ...)")
    found = {}
    for sub in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(
            f for f in _walk(sub) if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
        )
        if files:
            found[sub.name] = files
    if not found:
        raise DDSPMorphError(
            f"{source}: no audio files in instrument sub-folders ({', '.join(AUDIO_EXTENSIONS)})"
        )
    return found


def _walk(folder: Path) -> list[Path]:
    """Every file under ``folder``, following linked folders (each real folder once)."""
    out, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        out += [Path(root) / f for f in files]
    return out


def broken_links(source: Path) -> list[tuple[str, str]]:
    """(path, reason) for every link under ``source`` whose target is missing."""
    out = []
    for sub in sorted(p for p in source.iterdir() if p.is_dir()):
        for root, dirs, files in os.walk(sub, followlinks=True):
            for name in sorted(dirs + files):
                p = Path(root) / name
                if p.is_symlink() and not p.exists():
                    out.append((str(p), f"link to a missing target ({os.readlink(p)})"))
    return out


def sounding_regions(audio: np.ndarray, s: ImportSettings) -> list[tuple[int, int]]:
    """[start, end) sample ranges of sound, split at silences of >= min_silence_seconds."""
    hop = s.hop_length
    n = len(audio) // hop
    if n == 0:
        return []
    frames = audio[: n * hop].reshape(n, hop)
    rms_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = rms_db > rms_db.max() + s.silence_db
    min_gap = max(1, int(round(s.min_silence_seconds * s.sample_rate / hop)))
    regions, start, gap = [], None, 0
    for i, on in enumerate(loud):
        if on:
            if start is None:
                start = i
            gap = 0
        elif start is not None:
            gap += 1
            if gap >= min_gap:
                regions.append((start * hop, (i - gap + 1) * hop))
                start, gap = None, 0
    if start is not None:
        regions.append((start * hop, (n - gap) * hop))
    return regions


def process_file(path: Path, instrument: str, corpus_dir: Path, s: ImportSettings) -> dict:
    """Decode one recording and write its examples. Returns its record (also for a skip)."""
    import soxr

    sha = sha256_file(path)
    record = {
        "version": RECORD_VERSION,
        "source": str(path),
        "sha256": sha,
        "instrument": instrument,
    }
    try:
        channels, rate = read_audio(path, mono=False)
    except AudioFileError as e:
        return {**record, "status": "skipped", "reason": str(e).split(": ", 1)[-1], "examples": []}
    clipped = (np.abs(channels) >= s.clip_level).any(axis=1)
    mono = channels.mean(axis=1).astype(np.float32)
    audio = (
        soxr.resample(mono, rate, s.sample_rate, quality="HQ").astype(np.float32)
        if rate != s.sample_rate
        else mono
    )
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak < 1e-4:
        return {
            **record,
            "status": "skipped",
            "reason": f"silent (peak {peak:.1e})",
            "examples": [],
        }
    n_example = int(round(s.example_seconds * s.sample_rate))
    n_example -= n_example % s.hop_length
    regions = sounding_regions(audio, s)
    src = joined_indices(regions, int(round(s.max_rest_seconds * s.sample_rate)))
    sounding = np.zeros(len(audio), bool)
    for r0, r1 in regions:
        sounding[r0:r1] = True
    sound_s = float(sounding.sum()) / s.sample_rate
    min_piece = int(round(s.min_piece_seconds * s.sample_rate))
    examples, dropped_clipped, dropped_short_s = [], 0, 0.0
    stem = f"{path.stem}_{sha[:8]}"
    for a0 in range(0, len(src), n_example):
        idx = src[a0 : a0 + n_example]
        sound_here = float(sounding[idx].sum()) / s.sample_rate
        if len(idx) < min_piece:
            dropped_short_s += sound_here
            continue
        seg = np.zeros(n_example, np.float32)
        seg[: len(idx)] = audio[idx]
        orig = np.unique((idx * (rate / s.sample_rate)).astype(np.int64).clip(0, len(clipped) - 1))
        frac = float(clipped[orig].mean()) if len(orig) else 0.0
        if frac > s.max_clipped_fraction:
            dropped_clipped += 1
            continue
        ex_id = f"{instrument}_{stem}_{len(examples):04d}"
        rel = Path("audio") / instrument / f"{ex_id}.wav"
        save_wav(corpus_dir / rel, seg, s.sample_rate, subtype="PCM_24")
        examples.append(
            {
                "example_id": ex_id,
                "audio_path": str(rel),
                "sha256": sha256_file(corpus_dir / rel),
                "start_s": int(idx[0]) / s.sample_rate,
                "clipped_fraction": frac,
                "valid_samples": int(len(idx)),
                "sound_seconds": sound_here,
            }
        )
    if not examples:
        if dropped_clipped:
            reason = f"all {dropped_clipped} examples clipped"
        else:
            reason = (
                f"too short: {sound_s:.2f} s of sound, the shortest piece kept is "
                f"{s.min_piece_seconds:g} s (data.source.min_piece_seconds)"
            )
        return {
            **record,
            "status": "skipped",
            "reason": reason,
            "examples": [],
            "sound_seconds": sound_s,
        }
    return {
        **record,
        "status": "ok",
        "reason": "",
        "examples": examples,
        "dropped_clipped": dropped_clipped,
        "dropped_short_seconds": dropped_short_s,
        "sound_seconds": sound_s,
    }


def joined_indices(regions: list[tuple[int, int]], max_rest: int) -> np.ndarray:
    """Sample indices of the sounding regions joined into one stretch: each region, then the
    start of the rest before the next one (release and room), at most ``max_rest`` samples."""
    if not regions:
        return np.zeros(0, np.int64)
    starts = [r0 for r0, _ in regions]
    ends = [min(nxt, r1 + max_rest) for (_, r1), nxt in zip(regions, starts[1:], strict=False)]
    ends.append(regions[-1][1])  # the last region ends the stretch
    return np.concatenate([np.arange(r0, end) for r0, end in zip(starts, ends, strict=True)])


def record_path(corpus_dir: Path, instrument: str, path: Path) -> Path:
    return corpus_dir / "sources" / instrument / f"{path.name}.json"


def load_record(corpus_dir: Path, instrument: str, path: Path) -> dict | None:
    """The record of a finished file, if it is complete and still describes this file."""
    import json

    rp = record_path(corpus_dir, instrument, path)
    try:
        record = json.loads(rp.read_text())
    except (OSError, ValueError):
        return None
    if record.get("version") != RECORD_VERSION or record.get("sha256") != sha256_file(path):
        return None
    for e in record["examples"]:  # a missing, truncated or altered example redoes the file
        p = corpus_dir / e["audio_path"]
        if not p.exists() or sha256_file(p) != e["sha256"]:
            return None
    return record


def _unit_hash(text: str) -> float:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16) / 16**15


def assign_file_splits(
    checksums: dict[str, str], fractions: dict[str, float], seed: str
) -> dict[str, str]:
    """Whole files to splits by their audio's checksum: each file's split follows from a hash
    of (seed, its SHA-256) alone, so identical audio under two names lands in one split, and
    adding or removing other files moves no file. With 3 or more distinct recordings, valid
    and test get at least one each (the train files that hash closest to them move over).

    Args:
        checksums: file -> SHA-256 of its content.
    """
    unique = sorted(set(checksums.values()))
    if len(unique) < 3:
        return {f: "train" for f in checksums}
    p_valid = fractions.get("valid", 0.1)
    p_test = fractions.get("test", 0.1)
    score = {sha: _unit_hash(f"{seed}/{sha}") for sha in unique}
    split = {
        sha: "valid" if u < p_valid else "test" if u < p_valid + p_test else "train"
        for sha, u in score.items()
    }
    for name in ("valid", "test"):
        if name not in split.values():
            train = sorted((u, sha) for sha, u in score.items() if split[sha] == "train")
            split[train[0][1] if name == "valid" else train[-1][1]] = name
    return {f: split[sha] for f, sha in checksums.items()}


def duplicate_groups(checksums: dict[str, str]) -> list[list[str]]:
    """Files whose audio is identical (same SHA-256), each group sorted; groups of 2 or more."""
    groups: dict[str, list[str]] = {}
    for f, sha in checksums.items():
        groups.setdefault(sha, []).append(f)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def check_same_source(corpus_dir: Path, source: Path) -> None:
    """A corpus directory holds one source folder's import: another folder under the same
    corpus name is refused (its recordings would replace the first's under runs trained on
    them)."""
    import json

    previous = corpus_dir / "import.json"
    if not previous.exists():
        return
    try:
        before = Path(json.loads(previous.read_text())["source"])
    except (OSError, ValueError, KeyError):
        return
    if before.resolve() != Path(source).resolve():
        raise DDSPMorphError(
            f"{corpus_dir} holds the import of {before}, not {source}; give this folder another "
            f"corpus name (data.corpus.name=<name>), or remove {corpus_dir} to replace it"
        )


def import_folder(
    source: Path,
    corpus_dir: Path,
    settings: ImportSettings,
    features: FeatureSettings,
    *,
    context: ContextSettings | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Import ``source`` into ``corpus_dir`` (resuming); write manifest.csv, skipped.csv,
    balance.csv, balance.png. Returns (manifest, [(file, reason), ...] skipped)."""
    settings.validate()
    context = context or ContextSettings(
        sample_rate=features.sample_rate, hop_length=features.hop_length
    )
    check_same_source(corpus_dir, Path(source))
    found = scan_source(Path(source))
    corpus_dir.mkdir(parents=True, exist_ok=True)
    save_json(corpus_dir / "import.json", {"source": str(source), "settings": asdict(settings)})
    records = []
    total = sum(len(v) for v in found.values())
    bar = tqdm(total=total, desc="import", unit="file", disable=not progress)
    for instrument, files in found.items():
        for path in files:
            record = load_record(corpus_dir, instrument, path)
            if record is None:
                record = process_file(path, instrument, corpus_dir, settings)
                save_json(record_path(corpus_dir, instrument, path), record)
            if record["status"] != "ok":
                log.warning("skipped %s: %s", path, record["reason"])
            records.append(record)
            bar.update(1)
    bar.close()
    skipped = [(r["source"], r["reason"]) for r in records if r["status"] != "ok"]
    for path, why in broken_links(Path(source)):
        log.warning("skipped %s: %s", path, why)
        skipped.append((path, why))
    rows, duplicates = [], []
    for instrument in found:
        ok = [r for r in records if r["instrument"] == instrument and r["status"] == "ok"]
        checksums = {r["source"]: r["sha256"] for r in ok}
        splits = assign_file_splits(checksums, settings.split_fractions, instrument)
        for group in duplicate_groups(checksums):
            names = ", ".join(Path(f).name for f in group)
            log.warning(
                "%s: identical audio in %s; kept together in %s",
                instrument,
                names,
                splits[group[0]],
            )
            duplicates.append({"instrument": instrument, "files": group, "split": splits[group[0]]})
        if len(ok) < 3:
            log.warning(
                "%s: %d usable file(s); valid/test need 3 or more, so all go to train",
                instrument,
                len(ok),
            )
        for r in ok:
            for e in r["examples"]:
                rows.append(
                    {
                        "example_id": e["example_id"],
                        "instrument": instrument,
                        "split": splits[r["source"]],
                        "audio_path": e["audio_path"],
                        "feature_path": str(
                            Path("features") / instrument / f"{e['example_id']}.npz"
                        ),
                        "source_file": r["source"],
                        "source_sha256": r["sha256"],
                        "start_s": e["start_s"],
                        "clipped_fraction": e["clipped_fraction"],
                        "valid_samples": e["valid_samples"],
                        "sound_seconds": e["sound_seconds"],
                        "n_samples": int(round(settings.example_seconds * settings.sample_rate))
                        // settings.hop_length
                        * settings.hop_length,
                        "sample_rate": settings.sample_rate,
                        "seconds": settings.example_seconds,
                    }
                )
    if not rows:
        summary = "; ".join(f"{Path(f).name}: {why}" for f, why in skipped)
        raise DDSPMorphError(f"{source}: nothing usable to import ({summary})")
    manifest = pd.DataFrame(rows)
    save_csv(corpus_dir / "manifest.csv", manifest)  # features read it; rewritten below
    usable, unreadable = extract_corpus_features(
        corpus_dir, features, context=context, progress=progress
    )
    skipped += unreadable
    # Mostly-unvoiced examples out (flagged, not silently): noise, breath, room tone. Only the
    # frames that hold audio count (not the padding of a last piece).
    voiced_fraction = []
    for row in usable.itertuples():
        feats = load_npz(corpus_dir / row.feature_path)
        n = valid_frames(row.valid_samples, settings.hop_length)
        voiced_fraction.append(
            float((feats["periodicity"][:n] >= settings.voiced_threshold).mean())
        )
    usable = usable.assign(voiced_fraction=voiced_fraction)
    unvoiced = usable[usable["voiced_fraction"] < settings.min_voiced_fraction]
    for row in unvoiced.itertuples():
        why = (
            f"the example from {row.start_s:.1f} s is unvoiced ({row.voiced_fraction:.0%} "
            f"voiced frames; {(corpus_dir / row.audio_path).absolute()})"
        )
        log.warning("skipped %s: %s", row.source_file, why)
        skipped.append((row.source_file, why))
    usable = usable[usable["voiced_fraction"] >= settings.min_voiced_fraction]
    if settings.balance == "cap":
        usable = cap_train_minutes(usable)
    if usable.empty:
        raise DDSPMorphError(f"{source}: nothing usable after dropping unvoiced examples")
    usable = usable.reset_index(drop=True)
    save_csv(corpus_dir / "manifest.csv", usable)
    train = [
        _valid_part(
            {
                **load_npz(corpus_dir / r.feature_path),
                **load_npz(context_path(corpus_dir / r.feature_path)),
            },
            valid_frames(r.valid_samples, settings.hop_length),
        )
        for r in usable.itertuples()
        if r.split == "train"
    ]
    if not train:
        raise DDSPMorphError(
            f"{source}: no training example left (every usable file went to valid/test)"
        )
    write_stats(corpus_dir, train, features, context)
    save_csv(corpus_dir / "skipped.csv", pd.DataFrame(skipped, columns=["file", "reason"]))
    save_json(
        corpus_dir / "import.json",
        {"source": str(source), "settings": asdict(settings), "duplicates": duplicates},
    )
    sound = {}
    for r in records:
        sound[r["instrument"]] = sound.get(r["instrument"], 0.0) + r.get("sound_seconds", 0.0)
    balance = balance_report(corpus_dir, usable, settings, sound_seconds=sound)
    save_csv(corpus_dir / "balance.csv", balance)
    print_summary(balance, skipped, settings)
    return usable, skipped


def valid_frames(valid_samples: int, hop_length: int) -> int:
    """Frames (centred at m * hop) that hold audio rather than the padding of a last piece."""
    return -(-int(valid_samples) // hop_length)


def _valid_part(feats: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: v[:n] if getattr(v, "ndim", 0) else v for k, v in feats.items()}


def cap_train_minutes(manifest: pd.DataFrame) -> pd.DataFrame:
    """Keep as many training examples per instrument as the smallest instrument has (the first
    ones in file order, so the cut is deterministic); valid/test stay whole."""
    train = manifest[manifest["split"] == "train"]
    n = int(train.groupby("instrument").size().min())
    kept = train.groupby("instrument", sort=False).head(n)
    return pd.concat([kept, manifest[manifest["split"] != "train"]]).sort_index()


def note_name(hz: float) -> str:
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    m = int(round(69 + 12 * np.log2(hz / 440.0)))
    return f"{names[m % 12]}{m // 12 - 1}"


def balance_report(
    corpus_dir: Path,
    manifest: pd.DataFrame,
    s: ImportSettings,
    *,
    sound_seconds: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per instrument: minutes of audio in the corpus (padding excluded), the sounding minutes
    kept of those in the source folder, examples, files, pitch and loudness range; and
    balance.png. ``sound_seconds``: instrument -> seconds of sound in its source files."""
    rows, pitches = [], {}
    for instrument, g in manifest.groupby("instrument"):
        f0s, louds = [], []
        for r in g.itertuples():
            feats = load_npz(corpus_dir / r.feature_path)
            n = valid_frames(r.valid_samples, s.hop_length)
            feats = {k: feats[k][:n] for k in ("periodicity", "f0_hz", "loudness_db")}
            v = feats["periodicity"] >= s.voiced_threshold
            f0s.append(feats["f0_hz"][v])
            louds.append(feats["loudness_db"][v])
        f0, ld = np.concatenate(f0s), np.concatenate(louds)
        pitches[instrument] = 69 + 12 * np.log2(f0 / 440.0)
        lo, hi = np.percentile(f0, [5, 95]) if len(f0) else (np.nan, np.nan)
        minutes = float(g["valid_samples"].sum() / s.sample_rate / 60)
        kept = float(g["sound_seconds"].sum() / 60)
        total = (sound_seconds or {}).get(instrument, float("nan")) / 60
        rows.append(
            {
                "instrument": instrument,
                "minutes": minutes,
                "train_minutes": float(
                    g[g["split"] == "train"]["valid_samples"].sum() / s.sample_rate / 60
                ),
                "sound_minutes_kept": kept,
                "sound_minutes_total": total,
                "kept_fraction": kept / total if total > 0 else float("nan"),
                "examples": int(len(g)),
                "files": int(g["source_file"].nunique()),
                "pitch_p05": note_name(lo) if np.isfinite(lo) else "-",
                "pitch_p95": note_name(hi) if np.isfinite(hi) else "-",
                "loudness_p05_db": float(np.percentile(ld, 5)) if len(ld) else np.nan,
                "loudness_p95_db": float(np.percentile(ld, 95)) if len(ld) else np.nan,
                "below_minimum": bool(minutes < s.min_minutes_warning),
            }
        )
    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(max(11.0, 6.0 + 0.45 * len(df)), 4.4))
    axes[0].bar(
        df["instrument"],
        df["minutes"],
        color=["tab:red" if b else "tab:blue" for b in df["below_minimum"]],
    )
    axes[0].tick_params(axis="x", labelrotation=45)
    for label in axes[0].get_xticklabels():
        label.set_horizontalalignment("right")
    axes[0].axhline(
        s.min_minutes_warning,
        color="k",
        ls="--",
        lw=0.8,
        label=f"minimum {s.min_minutes_warning:g} min",
    )
    axes[0].set_ylabel("minutes")
    axes[0].legend()
    axes[0].set_title(f"audio per instrument (balance: {s.balance})")
    names = list(pitches)
    axes[1].boxplot(
        [pitches[n] if len(pitches[n]) else [np.nan] for n in names],
        orientation="horizontal",
        whis=(5, 95),
        showfliers=False,
    )
    axes[1].set_yticks(range(1, len(names) + 1), names, fontsize=8)
    axes[1].set_xlabel("MIDI pitch of voiced frames (box: quartiles, whiskers: 5th-95th pct.)")
    axes[1].set_title("pitch range")
    fig.tight_layout()
    fig.savefig(corpus_dir / "balance.png", dpi=90)
    plt.close(fig)
    return df


def print_summary(balance: pd.DataFrame, skipped: list[tuple[str, str]], s: ImportSettings) -> None:
    print(balance.round(2).to_string(index=False))
    for r in balance.itertuples():
        print(
            f"{r.instrument}: kept {r.sound_minutes_kept:.2f} of {r.sound_minutes_total:.2f} "
            f"min of sound ({r.kept_fraction:.0%})"
        )
    for r in balance.itertuples():
        if r.below_minimum:
            print(
                f"warning: {r.instrument} has {r.minutes:.1f} min, less than {s.min_minutes_warning:g} min"
            )
    if skipped:
        print(f"skipped {len(skipped)}:")
        for f, why in skipped:
            print(f"  {f}: {why}")
