"""Cutting one recording into examples: its sounding stretches, joined across rests, padded and masked."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ddsp_morph.data.importer.settings import RECORD_VERSION, ImportSettings
from ddsp_morph.data.io import (
    read_audio,
    save_wav,
    sha256_file,
)
from ddsp_morph.errors import AudioFileError

log = logging.getLogger(__name__)


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


def valid_frames(valid_samples: int, hop_length: int) -> int:
    """Frames (centred at m * hop) that hold audio rather than the padding of a last piece."""
    return -(-int(valid_samples) // hop_length)


def _valid_part(feats: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: v[:n] if getattr(v, "ndim", 0) else v for k, v in feats.items()}
