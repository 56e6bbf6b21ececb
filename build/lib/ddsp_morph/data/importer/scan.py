"""Finding the recordings of a source folder: one subfolder per instrument, links followed once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ddsp_morph.data.importer.settings import AUDIO_EXTENSIONS
from ddsp_morph.errors import DDSPMorphError

log = logging.getLogger(__name__)


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
