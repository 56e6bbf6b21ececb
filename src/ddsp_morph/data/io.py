"""Atomic file writes and audio reading with one-line errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ddsp_morph.errors import AudioFileError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_with(path: str | Path, write: Callable[[io.BytesIO], Any]) -> None:
    """Render a file into memory with ``write(buffer)``, then write it atomically."""
    buffer = io.BytesIO()
    write(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def save_npz(path: str | Path, **arrays: Any) -> None:
    atomic_write_with(path, lambda b: np.savez(b, **arrays))


def save_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_wav(
    path: str | Path, audio: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT"
) -> None:
    """Write a mono wav atomically. Float wavs carry a timestamped PEAK chunk; use PCM_24 where
    the file's bytes must be reproducible."""
    data = np.asarray(audio, dtype=np.float32)
    atomic_write_with(path, lambda b: sf.write(b, data, sample_rate, format="WAV", subtype=subtype))


def save_csv(path: str | Path, frame: Any) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha1_array(x: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()


def read_audio(
    path: str | Path, *, expected_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 (``mono=False``: Shape [n_samples, n_channels]).

    Raises:
        AudioFileError: one line naming the file, when it cannot be decoded, is empty, holds
        NaN/inf, or has another sample rate than ``expected_rate``.
    """
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; all mean "unreadable"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioFileError(f"{path}: cannot read audio ({reason})") from e
    if audio.size == 0:
        raise AudioFileError(f"{path}: audio file is empty")
    if not np.isfinite(audio).all():
        raise AudioFileError(f"{path}: audio contains NaN or inf")
    if expected_rate is not None and rate != expected_rate:
        raise AudioFileError(f"{path}: sample rate {rate} Hz, expected {expected_rate} Hz")
    return (audio.mean(axis=1) if mono else audio), rate


def load_npz(path: str | Path) -> dict[str, np.ndarray] | None:
    """Load an npz cache entry; None when it is missing or unreadable (a truncated write)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
