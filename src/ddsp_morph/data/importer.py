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

from ddsp_morph.data.corpus import SPLITS, extract_corpus_features, write_stats  # noqa: E402
from ddsp_morph.data.features import ContextSettings, FeatureSettings, context_path  # noqa: E402
from ddsp_morph.data.io import (  # noqa: E402
    load_npz,
    read_audio,
    save_csv,
    save_json,
    save_wav,
    sha256_file,
)
from ddsp_morph.data.origin import (  # noqa: E402
    IMPORTED,
    describe,
    differing_keys,
    dotted,
    manifest_sha256,
    read_origin,
    write_origin,
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
    # takes the user holds out by name: glob patterns on <instrument>/<path in its folder>, or
    # on the file name alone when the pattern has no '/'
    test_takes: list[str] = field(default_factory=list)
    valid_takes: list[str] = field(default_factory=list)

    def identity(self) -> dict:
        """The settings that decide what the import writes: a corpus imported with others is
        another corpus (the warning threshold only changes a report)."""
        out = asdict(self)
        out.pop("min_minutes_warning")
        return out

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


def scan_source(source: Path) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    """instrument -> its audio files (sorted), with linked sub-folders followed once and only
    where they stay the instrument's own: a link back to the folder itself or above it (a
    loop), into another instrument's folder, or to a folder already walked is not followed,
    and neither is a linked file from another instrument's folder. Returns (files, skipped
    links as (path, reason)), links that lead nowhere among them."""
    if not source.is_dir():
        raise DDSPMorphError(f"{source}: no such folder (expected <folder>/<instrument>/*.wav ...)")
    subs = sorted(p for p in source.iterdir() if p.is_dir())
    real_subs = {sub.name: Path(os.path.realpath(sub)) for sub in subs}
    found, skipped = {}, []
    for sub in subs:
        others = [r for name, r in real_subs.items() if name != sub.name]
        paths, skip = _walk(sub, others)
        skipped += skip
        files = sorted(f for f in paths if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        if files:
            found[sub.name] = files
    if not found:
        raise DDSPMorphError(
            f"{source}: no audio files in instrument sub-folders ({', '.join(AUDIO_EXTENSIONS)})"
        )
    return found, skipped


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(folder: Path, others: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every file under ``folder``, following linked folders that stay its own (see
    ``scan_source``); (files, [(link, why it was not followed), ...])."""
    own = Path(os.path.realpath(folder))
    out, skipped, seen = [], [], {own}
    for root, dirs, files in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirs):
            p = Path(root) / d
            if not p.is_symlink():
                keep.append(d)
                continue
            if not p.exists():
                skipped.append((str(p), f"link to a missing target ({os.readlink(p)})"))
                continue
            real = Path(os.path.realpath(p))
            why = None
            if _inside(own, real):
                why = f"a link back to {real} (a loop): not followed"
            elif any(_inside(real, o) or _inside(o, real) for o in others):
                why = f"a link into another instrument's folder ({real}): not followed"
            elif real in seen:
                why = f"a second link to {real}: followed once"
            if why is None:
                seen.add(real)
                keep.append(d)
            else:
                skipped.append((str(p), why))
        dirs[:] = keep
        for f in sorted(files):
            p = Path(root) / f
            if p.is_symlink() and not p.exists():
                skipped.append((str(p), f"link to a missing target ({os.readlink(p)})"))
                continue
            real = Path(os.path.realpath(p))
            if p.is_symlink() and any(_inside(real, o) for o in others):
                skipped.append((str(p), f"a link to another instrument's file ({real}): skipped"))
                continue
            out.append(p)
    return out, skipped


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


SPLIT_RESOLUTION_SECONDS = 0.05  # durations are matched to this step when splits are filled


def closest_subset(seconds: list[float], target: float) -> list[int]:
    """Indices of items whose durations sum closest to ``target`` (0/1 subset sum at
    ``SPLIT_RESOLUTION_SECONDS``); the items earlier in the list are used first, so the order
    given (a hash) decides among equally good subsets. Ties go to the smaller sum."""
    w = np.maximum(1, np.round(np.asarray(seconds, float) / SPLIT_RESOLUTION_SECONDS)).astype(int)
    t = int(round(target / SPLIT_RESOLUTION_SECONDS))
    if t <= 0 or not len(w):
        return []
    cap = 2 * t  # a sum of 2t or more is no closer than the empty set
    reach = np.zeros(cap + 1, bool)
    reach[0] = True
    last_item = np.full(cap + 1, -1)
    for i, wi in enumerate(w):
        if wi > cap:
            continue
        new = np.zeros_like(reach)
        new[wi:] = reach[: cap + 1 - wi]
        new &= ~reach
        last_item[new] = i
        reach |= new
    sums = np.flatnonzero(reach)
    best = int(sums[np.argmin(np.abs(sums - t))])
    out = []
    while best > 0:
        i = int(last_item[best])
        out.append(i)
        best -= int(w[i])
    return sorted(out)


def assign_file_splits(
    checksums: dict[str, str],
    fractions: dict[str, float],
    seed: str,
    *,
    seconds: dict[str, float] | None = None,
    fixed: dict[str, str] | None = None,
) -> dict[str, str]:
    """Whole files to splits, so that each split's share of the instrument's audio (in
    seconds) comes as close to its fraction as whole files allow. Identical audio (same
    SHA-256) is one unit and lands in one split.

    Files are taken in the order of a hash of (seed, their SHA-256), and for test, then valid,
    the subset of the free files whose seconds come closest to what the split still needs is
    chosen (``closest_subset``); the rest trains. ``fixed`` (SHA-256 -> split) is kept as it
    is: the takes a user names, and the splits of an earlier import, so adding files never
    moves a file imported before; the new files fill what each split lacks. With 3 or more
    distinct recordings, valid and test get at least one each.

    Args:
        checksums: file -> SHA-256 of its content.
        seconds: file -> seconds of audio it gives the corpus (default: 1 per file).
        fixed: SHA-256 -> split, for the units whose split is already decided.
    """
    seconds = seconds or dict.fromkeys(checksums, 1.0)
    unit_s: dict[str, float] = {}
    for f, sha in checksums.items():
        unit_s[sha] = unit_s.get(sha, 0.0) + float(seconds[f])
    split = {sha: name for sha, name in (fixed or {}).items() if sha in unit_s}
    if len(unit_s) < 3 and not split:
        return dict.fromkeys(checksums, "train")
    total = sum(unit_s.values())
    have = {name: sum(unit_s[sha] for sha, n in split.items() if n == name) for name in SPLITS}
    free = sorted(
        (sha for sha in unit_s if sha not in split), key=lambda h: _unit_hash(f"{seed}/{h}")
    )
    for name in ("test", "valid"):
        need = float(fractions.get(name, 0.1)) * total - have[name]
        chosen = closest_subset([unit_s[sha] for sha in free], need) if need > 0 else []
        if not chosen and have[name] == 0 and len(free) >= 2 and fractions.get(name, 0.1) > 0:
            chosen = [int(np.argmin([abs(unit_s[sha] - need) for sha in free]))]
        if len(chosen) == len(free):  # leave one unit to train on
            chosen = chosen[:-1]
        for i in chosen:
            split[free[i]] = name
            have[name] += unit_s[free[i]]
        free = [sha for i, sha in enumerate(free) if i not in set(chosen)]
    split.update(dict.fromkeys(free, "train"))
    return {f: split[sha] for f, sha in checksums.items()}


def named_takes(files: list[Path], folder: Path, instrument: str, s: ImportSettings) -> dict:
    """file -> the split the user named for it (``data.source.test_takes`` / ``valid_takes``:
    glob patterns on ``<instrument>/<path in its folder>``, or on the file name alone when a
    pattern has no '/'). A file named for both is refused in one line."""
    from fnmatch import fnmatch

    out: dict[str, str] = {}
    for path in files:
        rel = f"{instrument}/{path.relative_to(folder).as_posix()}"
        for name, patterns in (("test", s.test_takes), ("valid", s.valid_takes)):
            if any(fnmatch(rel if "/" in p else path.name, p) for p in patterns):
                if out.get(str(path), name) != name:
                    raise ConfigError(
                        f"{path}: named in both data.source.test_takes and valid_takes"
                    )
                out[str(path)] = name
    return out


def duplicate_groups(checksums: dict[str, str]) -> list[list[str]]:
    """Files whose audio is identical (same SHA-256), each group sorted; groups of 2 or more."""
    groups: dict[str, list[str]] = {}
    for f, sha in checksums.items():
        groups.setdefault(sha, []).append(f)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def check_origin(corpus_dir: Path, source: Path, settings: ImportSettings) -> dict | None:
    """A corpus folder holds one source folder's import, made with one set of settings: a
    render, an import of another folder, or this folder imported with other settings is
    refused in one line, before anything is written (the examples would mix under runs trained
    on the first). Returns the earlier import's record, if any."""
    origin = read_origin(corpus_dir)
    if origin is None:
        return None
    if origin["kind"] != IMPORTED:
        raise DDSPMorphError(
            f"{corpus_dir}: holds {describe(origin)}; the import of {source} is not written into "
            "it — give this folder its own corpus name (data.corpus.name=<name>)"
        )
    before = Path(origin["source"])
    if before.resolve() != Path(source).resolve():
        raise DDSPMorphError(
            f"{corpus_dir} holds the import of {before}, not {source}; give this folder another "
            f"corpus name (data.corpus.name=<name>), or remove {corpus_dir} to replace it"
        )
    recorded = dict(origin.get("settings") or {})
    recorded.pop("min_minutes_warning", None)
    now = settings.identity()
    differ = [k for k in differing_keys(recorded, now) if k.split(".")[0] in recorded]
    if differ:
        parts = ", ".join(f"{k} {dotted(recorded, k)!r} -> {dotted(now, k)!r}" for k in differ)
        raise DDSPMorphError(
            f"{corpus_dir}: imported from {before} with other settings ({parts}); importing "
            "again would mix examples of both — keep those settings, or import into a new "
            "name (data.corpus.name=<name>)"
        )
    return origin


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
    balance.csv, balance.png and the corpus record (``data.origin``). Returns (manifest,
    [(file, reason), ...] skipped)."""
    settings.validate()
    context = context or ContextSettings(
        sample_rate=features.sample_rate, hop_length=features.hop_length
    )
    source = Path(source)
    previous = check_origin(corpus_dir, source, settings) or {}
    found, skipped = scan_source(source)
    named: dict[str, str] = {}
    for instrument, files in found.items():
        named.update(named_takes(files, source / instrument, instrument, settings))
    corpus_dir.mkdir(parents=True, exist_ok=True)
    record_base = {"kind": IMPORTED, "source": str(source), "settings": asdict(settings)}
    # the earlier import's splits stay in the record while this one runs
    write_origin(
        corpus_dir, {**record_base, "complete": False, "splits": previous.get("splits", {})}
    )
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
    for path, why in skipped:
        log.warning("skipped %s: %s", path, why)
    skipped = [(r["source"], r["reason"]) for r in records if r["status"] != "ok"] + skipped
    rows, duplicates, splits_record = [], [], {}
    for instrument in found:
        ok = [r for r in records if r["instrument"] == instrument and r["status"] == "ok"]
        checksums = {r["source"]: r["sha256"] for r in ok}
        fixed = dict(previous.get("splits", {}).get(instrument, {}))
        fixed.update({checksums[f]: name for f, name in named.items() if f in checksums})
        splits = assign_file_splits(
            checksums,
            settings.split_fractions,
            instrument,
            seconds={
                r["source"]: sum(e["valid_samples"] for e in r["examples"]) / settings.sample_rate
                for r in ok
            },
            fixed=fixed,
        )
        splits_record[instrument] = {checksums[f]: name for f, name in sorted(splits.items())}
        for group in duplicate_groups(checksums):
            names = ", ".join(Path(f).name for f in group)
            log.warning(
                "%s: identical audio in %s; kept together in %s",
                instrument,
                names,
                splits[group[0]],
            )
            duplicates.append({"instrument": instrument, "files": group, "split": splits[group[0]]})
        if len(set(checksums.values())) < 3:
            log.warning(
                "%s: %d usable recording(s); valid/test need 3 or more, so all go to train",
                instrument,
                len(set(checksums.values())),
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
    write_origin(
        corpus_dir,
        {
            **record_base,
            "complete": True,
            "files": {
                Path(r["source"]).relative_to(source).as_posix(): r["sha256"] for r in records
            },
            "splits": splits_record,
            "duplicates": duplicates,
            "manifest_sha256": manifest_sha256(corpus_dir),
        },
    )
    sound = {}
    for r in records:
        sound[r["instrument"]] = sound.get(r["instrument"], 0.0) + r.get("sound_seconds", 0.0)
    balance = balance_report(corpus_dir, usable, settings, sound_seconds=sound)
    save_csv(corpus_dir / "balance.csv", balance)
    print_summary(balance, skipped, settings)
    return usable, skipped


def check_import(
    corpus_dir: Path, origin: dict, features: FeatureSettings, context: ContextSettings
) -> str | None:
    """None when the finished import in ``corpus_dir`` is whole: its manifest is the one the
    import wrote and every example has its audio and features for these settings; else what
    is wrong, in a few words. Reads only; writes nothing."""
    if not origin.get("complete"):
        return "the import did not finish"
    sha = manifest_sha256(corpus_dir)
    if sha is None:
        return "manifest.csv is missing"
    if origin.get("manifest_sha256") not in (None, sha):
        return "manifest.csv is not the one the import wrote"
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    for r in manifest.itertuples():
        feats = load_npz(corpus_dir / r.feature_path)
        ctx = load_npz(context_path(corpus_dir / r.feature_path))
        if not (corpus_dir / r.audio_path).exists():
            return f"{r.audio_path} is missing"
        if feats is None or str(feats.get("settings")) != features.key():
            return f"the features of {r.example_id} are missing or were made with other settings"
        if ctx is None or str(ctx.get("settings")) != context.key():
            return f"the context features of {r.example_id} are missing or other"
    if not (corpus_dir / "stats.json").exists():
        return "stats.json is missing"
    return None


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
