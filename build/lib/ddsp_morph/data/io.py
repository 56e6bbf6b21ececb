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


def wav_declared_frames(path: str | Path) -> int | None:
    """The frame count a RIFF/WAVE file's header declares for its data chunk (None: not a
    WAVE file, or no data chunk found). libsndfile reads a file cut short without a word, so
    the declared size is what tells."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                    if size % 2:
                        f.seek(1, 1)
                elif cid == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + size % 2, 1)
    except OSError:
        return None


def read_audio(
    path: str | Path, *, expected_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 (``mono=False``: Shape [n_samples, n_channels]).

    Raises:
        AudioFileError: one line naming the file, when it cannot be decoded, is empty, holds
        NaN/inf, or has another sample rate than ``expected_rate``.
    """
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise AudioFileError(f"{path}: empty file (0 bytes)")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; all mean "unreadable"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioFileError(f"{path}: cannot read audio ({reason})") from e
    if audio.size == 0:
        raise AudioFileError(f"{path}: audio file is empty")
    declared = wav_declared_frames(path)
    if declared is not None and declared > len(audio):
        raise AudioFileError(
            f"{path}: cut short: {len(audio) / rate:.2f} s of the {declared / rate:.2f} s its "
            "header declares (an interrupted copy or recording?)"
        )
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
