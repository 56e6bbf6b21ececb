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
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ddsp_morph.data.corpus import extract_corpus_features, write_stats
from ddsp_morph.data.features import ContextSettings, FeatureSettings, context_path
from ddsp_morph.data.importer.records import (
    assign_file_splits,
    check_origin,
    duplicate_groups,
    load_record,
    named_takes,
    record_path,
)
from ddsp_morph.data.importer.report import balance_report, cap_train_minutes, print_summary
from ddsp_morph.data.importer.scan import scan_source
from ddsp_morph.data.importer.segment import _valid_part, process_file, valid_frames
from ddsp_morph.data.importer.settings import ImportSettings
from ddsp_morph.data.io import (
    load_npz,
    save_csv,
    save_json,
)
from ddsp_morph.data.origin import (
    IMPORTED,
    manifest_sha256,
    write_origin,
)
from ddsp_morph.errors import DDSPMorphError

log = logging.getLogger(__name__)


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
