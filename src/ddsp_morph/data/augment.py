"""Augmentations of training crops that change the performance and keep the instrument, so
that the decoder cannot read the instrument from the register or the level it is played at.

Pitch shift: a crop played faster or slower, as a sampler plays one recorded note over a
range of keys.

A shift by ``ratio`` reads the example at ``ratio`` source samples per output sample
(soxr, band-limited). Every partial and the spectral envelope move by ``ratio``; so do the
frame-rate signals' times. f0 (and the spectral centroid) are scaled by ``ratio``, loudness
is measured again on the shifted audio (the A-weighting depends on frequency), the other
frame signals are read at the shifted times. It gives the decoder every instrument in
registers the corpus holds little of, the way a SoundFont itself makes them.

Gain: a crop played louder or softer by a constant; its loudness moves by the same dB (the
A-weighted level is a power). Another corpus, recording or SoundFont sets its levels
differently: the instrument should not be heard in them. The cached context features follow
exactly where no band sits at the log floor: centroid and flatness do not depend on the level,
the MFCCs move by the DCT of a constant log-mel offset, and Vassilakis roughness (amplitude
product to the power 0.1) scales by 10 ** (g / 100). A pitch shift changes all of them, so
it is refused with a context conditioning (``config.validate_training_config``)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ddsp_morph.dsp.filters import dct_matrix
from ddsp_morph.dsp.loudness import POWER_FLOOR, a_weighted_loudness_db

# frame signals in Hz: scaled by the shift's ratio
HZ_SIGNALS = ("f0_hz", "centroid_hz")


def _check_limits(what: str, name: str, limit: float, top: float, probability: float) -> None:
    if not 0 <= limit <= top:
        raise ValueError(f"{what}: {name} must be in [0, {top:g}], got {limit}")
    if not 0 <= probability <= 1:
        raise ValueError(f"{what}: probability must be in [0, 1], got {probability}")


def draw_amount(rng: np.random.Generator, limit: float, probability: float) -> float:
    """0.0 (the crop unchanged) unless a draw falls below ``probability``; then uniform in
    ±``limit``."""
    if limit <= 0 or probability <= 0 or rng.random() >= probability:
        return 0.0
    return float(rng.uniform(-limit, limit))


@dataclass(frozen=True)
class PitchShift:
    """Shifts drawn uniformly from [-semitones, +semitones] for a ``probability`` of crops."""

    semitones: float = 0.0
    probability: float = 0.5
    sample_rate: int = 16000
    loudness_n_fft: int = 1024

    def __post_init__(self) -> None:
        _check_limits("pitch shift", "semitones", self.semitones, 12, self.probability)

    @property
    def active(self) -> bool:
        return self.semitones > 0 and self.probability > 0

    def draw_ratio(self, rng: np.random.Generator) -> float:
        """1.0 for an unshifted crop, else 2 ** (s / 12) with s uniform in ±semitones."""
        semitones = draw_amount(rng, self.semitones, self.probability)
        return 1.0 if semitones == 0.0 else float(2.0 ** (semitones / 12.0))

    def source_frames(self, n_frames: int, ratio: float) -> int:
        """Source frames a crop of ``n_frames`` output frames reads at ``ratio``."""
        return int(math.ceil((n_frames - 1) * ratio)) + 1


def _resample(audio: np.ndarray, ratio: float, sample_rate: int) -> np.ndarray:
    import soxr

    if ratio == 1.0:
        return np.asarray(audio, np.float32)
    return soxr.resample(np.asarray(audio, np.float32), sample_rate * ratio, sample_rate)


def shifted_crop(
    item: dict[str, torch.Tensor],
    start: int,
    n_frames: int,
    ratio: float,
    *,
    hop_length: int,
    shift: PitchShift,
) -> dict[str, torch.Tensor]:
    """The crop whose output frame j sits at source frame ``start + j * ratio``, played at
    ``ratio`` (pitch up for ratio > 1). ``item``: a whole example as the dataset holds it
    (audio [n_samples], frame signals [frames, ...]); the crop must fit in the example:
    ``start + source_frames(n_frames, ratio) <= frames``. Returns the same keys."""
    h, n = hop_length, n_frames
    total = item["f0_hz"].shape[0]
    if start < 0 or start + shift.source_frames(n, ratio) > total:
        raise ValueError(
            f"shifted crop: frames {start}..{start + shift.source_frames(n, ratio)} "
            f"do not fit in an example of {total}"
        )
    audio = item["audio"].numpy()
    # Loudness frames need n_fft / 2 samples either side: read that margin where it exists.
    margin = int(math.ceil(shift.loudness_n_fft / 2 / h))
    lo = max(0, int(math.floor(start * h - margin * h * ratio)))
    hi = min(len(audio), int(math.ceil(start * h + (n + margin) * h * ratio)) + 1)
    y = _resample(audio[lo:hi], ratio, shift.sample_rate)
    offset = int(round((start * h - lo) / ratio))  # output sample 0 of the crop, in y
    pad = h * min(margin, offset // h)  # whole frames of context before it
    window = y[offset - pad : offset + (n + margin) * h]
    need = pad + (n + margin) * h
    if len(window) < need:
        window = np.pad(window, (0, need - len(window)))
    loud = a_weighted_loudness_db(
        torch.from_numpy(np.ascontiguousarray(window))[None],
        sample_rate=shift.sample_rate,
        hop_length=h,
        n_fft=shift.loudness_n_fft,
    )[0, pad // h : pad // h + n]
    out = {k: v for k, v in item.items() if v.ndim == 0}
    out["audio"] = torch.from_numpy(np.ascontiguousarray(window[pad : pad + n * h]))
    out["loudness_db"] = loud.float()
    at = start + np.arange(n) * ratio
    grid = np.arange(total)
    for k, v in item.items():
        if k in ("audio", "loudness_db") or v.ndim == 0:
            continue
        x = v.numpy().reshape(total, -1)
        cols = [np.interp(at, grid, x[:, c]) for c in range(x.shape[1])]
        read = np.stack(cols, axis=1).reshape(n, *v.shape[1:])
        if k in HZ_SIGNALS:
            read = read * ratio
        if k == "mask":
            read = (read > 0.5).astype(np.float32)
        out[k] = torch.from_numpy(read).to(v.dtype)
    return out


@dataclass(frozen=True)
class GainChange:
    """Gains drawn uniformly from [-db, +db] for a ``probability`` of crops."""

    db: float = 0.0
    probability: float = 0.5
    n_mels: int = 64  # the mel bands under the cached MFCCs (data.context.n_mels)

    def __post_init__(self) -> None:
        _check_limits("gain change", "db", self.db, 24, self.probability)

    @property
    def active(self) -> bool:
        return self.db > 0 and self.probability > 0

    def draw_db(self, rng: np.random.Generator) -> float:
        """0.0 for an unchanged crop, else a gain uniform in ±db."""
        return draw_amount(rng, self.db, self.probability)


@functools.cache
def _mfcc_shift_per_db(n_mels: int, n_mfcc: int) -> torch.Tensor:
    """What 1 dB more does to the MFCCs: natural-log mel power moves by ln(10) / 10 in every
    band, and the DCT takes that constant to its coefficients."""
    return torch.from_numpy(math.log(10.0) / 10.0 * dct_matrix(n_mels, n_mfcc).sum(axis=1))


def with_gain(
    crop: dict[str, torch.Tensor], gain_db: float, *, n_mels: int = 64
) -> dict[str, torch.Tensor]:
    """``crop`` played ``gain_db`` louder: audio scaled, loudness moved by ``gain_db``, and the
    context features it carries (``data.features.CONTEXT_FEATURES``) moved with it; frames at
    the silence floor stay as they are. ``n_mels``: the mel bands under the cached MFCCs.
    Returns a new dict; the other signals are shared."""
    if gain_db == 0.0:
        return crop
    out = dict(crop)
    out["audio"] = crop["audio"] * float(10.0 ** (gain_db / 20.0))
    floor = 10.0 * float(np.log10(POWER_FLOOR))
    loud = crop["loudness_db"]
    sounding = loud > floor
    out["loudness_db"] = torch.where(sounding, (loud + gain_db).clamp_min(floor), loud)
    if "sounding_db" in crop:
        out["sounding_db"] = crop["sounding_db"] + gain_db
    if "mfcc" in crop:
        mfcc = crop["mfcc"]
        moved = mfcc + gain_db * _mfcc_shift_per_db(n_mels, mfcc.shape[-1]).to(mfcc.dtype)
        out["mfcc"] = torch.where(sounding[:, None], moved, mfcc)
    if "roughness" in crop:
        out["roughness"] = crop["roughness"] * float(10.0 ** (gain_db / 100.0))
    return out
