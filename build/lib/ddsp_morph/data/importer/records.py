"""What an import keeps between runs: per-file records, the splits of every recording (fair by
minutes, sticky, or named) and the duplicates."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ddsp_morph.data.corpus import SPLITS
from ddsp_morph.data.importer.settings import RECORD_VERSION, ImportSettings
from ddsp_morph.data.io import (
    sha256_file,
)
from ddsp_morph.data.origin import (
    IMPORTED,
    describe,
    differing_keys,
    dotted,
    read_origin,
)
from ddsp_morph.errors import ConfigError, DDSPMorphError

log = logging.getLogger(__name__)


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
