"""What made a corpus, recorded in one place: ``<corpus>/corpus.json``.

A corpus is either *rendered* (the SoundFont renderer's settings and the SoundFont's SHA-256)
or *imported* (the source folder, the import's settings, and once the import has finished,
the SHA-256 of every source file and of the manifest). The record is what keeps two corpora
from mixing: a render never writes into an imported corpus or into a render made with other
settings, an import never writes into a render or into an import of another folder or with
other settings, and ``prepare`` without a source checks (or resumes) an imported corpus instead
of rendering into it.

Corpora written before this record existed are recognised: ``import.json`` marks an import,
and a ``corpus.json`` without ``kind`` a render.
"""

from __future__ import annotations

import json
from pathlib import Path

from ddsp_morph.data.io import save_json, sha256_file
from ddsp_morph.errors import DDSPMorphError

ORIGIN_FILE = "corpus.json"
LEGACY_IMPORT_FILE = "import.json"
RENDERED, IMPORTED, UNKNOWN = "rendered", "imported", "unknown"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DDSPMorphError(
            f"{path}: unreadable corpus record ({type(e).__name__}); the folder's origin is "
            "unknown, so nothing is written into it — remove the folder to rebuild it"
        ) from None
    if not isinstance(data, dict):
        raise DDSPMorphError(f"{path}: not a corpus record (expected a JSON object)")
    return data


def read_origin(corpus_dir: Path) -> dict | None:
    """The record of what made the corpus in ``corpus_dir``; None for a folder with no corpus.

    Returns a dict with ``kind`` (``rendered``, ``imported``, or ``unknown`` for a manifest
    with no record) and the kind's fields."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / ORIGIN_FILE
    if path.exists():
        data = _read_json(path)
        return data if "kind" in data else {"kind": RENDERED, **data}
    legacy = corpus_dir / LEGACY_IMPORT_FILE
    if legacy.exists():
        data = _read_json(legacy)
        return {
            "kind": IMPORTED,
            "source": str(data.get("source", "")),
            "settings": data.get("settings", {}),
            "complete": (corpus_dir / "manifest.csv").exists(),
        }
    if (corpus_dir / "manifest.csv").exists():
        return {"kind": UNKNOWN}
    return None


def write_origin(corpus_dir: Path, record: dict) -> None:
    """Write the record atomically."""
    save_json(Path(corpus_dir) / ORIGIN_FILE, record)


def describe(origin: dict) -> str:
    """The origin in a few words, for one-line messages."""
    if origin["kind"] == IMPORTED:
        return f"an import of {origin.get('source')}"
    if origin["kind"] == RENDERED:
        sf = (
            origin.get("soundfont")
            or f"SoundFont sha256 {str(origin.get('soundfont_sha256'))[:12]}"
        )
        return f"a render of {sf}"
    return "a corpus of unknown origin (a manifest.csv with no corpus.json)"


def differing_keys(before: dict, now: dict) -> list[str]:
    """The keys (dotted for nested dicts) whose values differ between two settings records."""
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in differing_keys(a, b)]
        elif a != b:
            out.append(key)
    return out


def dotted(data: dict, key: str):
    """The value at a dotted key of nested dicts (None where a part is missing)."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def manifest_sha256(corpus_dir: Path) -> str | None:
    path = Path(corpus_dir) / "manifest.csv"
    return sha256_file(path) if path.exists() else None
