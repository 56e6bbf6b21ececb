"""Frame-rate features: f0 and periodicity (torchcrepe), A-weighted loudness; cached on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.data.io import load_npz, save_npz, sha1_array
from ddsp_morph.dsp.loudness import a_weighted_loudness_db

# v2: deterministic decoding (local average around the decoded bin instead of torchcrepe's
# random dither). v3: own Viterbi on normalised activations, and the harmonic octave check.
FEATURES_VERSION = 3
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of CREPE's bin 0
LOCAL_BINS = 4  # bins each side of the decoded bin in the local average (CREPE's choice)


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate: int = 16000
    hop_length: int = 128
    f0_model: str = "tiny"
    f0_fmin: float = 50.0
    f0_fmax: float = 2000.0
    f0_decoder: str = "viterbi"
    f0_batch_size: int = 512
    f0_octave_check: bool = True  # correct f0 that is 2-6x the pitch the spectrum supports
    loudness_n_fft: int = 1024
    # CREPE's hop in samples; None: every frame. A coarser hop costs proportionally less (the
    # network is nearly all of the features' time); f0 (in cents) and periodicity are then
    # interpolated linearly to the frame rate. 256 = conf/data's default
    # (experiments/feature_validation/REPORT.md).
    f0_hop_length: int | None = 256

    @property
    def f0_hop(self) -> int:
        return int(self.hop_length if self.f0_hop_length is None else self.f0_hop_length)

    def key(self) -> str:
        check = "|octave" if self.f0_octave_check else ""
        hop = f"|f0hop{self.f0_hop}" if self.f0_hop != self.hop_length else ""
        return f"v{FEATURES_VERSION}|{self.sample_rate}|{self.hop_length}|{self.f0_model}|{self.f0_fmin}|{self.f0_fmax}|{self.f0_decoder}|{self.loudness_n_fft}{check}{hop}"


def _local_average_hz(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Sub-bin f0: the probability-weighted mean of the bins' cents within ±LOCAL_BINS of
    ``bins``. probs [batch, 360, frames] (masked bins may be -inf), bins [batch, frames]."""
    p = torch.nan_to_num(probs, nan=0.0, neginf=0.0, posinf=0.0).clamp_min(0.0)
    offsets = torch.arange(-LOCAL_BINS, LOCAL_BINS + 1)
    idx = (bins.unsqueeze(1) + offsets[None, :, None]).clamp(0, p.shape[1] - 1)
    w = torch.gather(p, 1, idx)
    inside = (bins.unsqueeze(1) + offsets[None, :, None] >= 0) & (
        bins.unsqueeze(1) + offsets[None, :, None] < p.shape[1]
    )
    w = w * inside
    cents_grid = CENTS_PER_BIN * idx.double() + CENTS_OFFSET
    total = w.double().sum(1)
    cents = torch.where(
        total > 0,
        (w.double() * cents_grid).sum(1) / total.clamp_min(1e-12),
        CENTS_PER_BIN * bins.double() + CENTS_OFFSET,
    )
    return (10.0 * 2.0 ** (cents / 1200.0)).float()


# The path's transition score: log-probability of a jump of d bins, a Gaussian of SIGMA_BINS
# bins (vibrato, slides) floored at JUMP_LOGP for any other jump (a new note, any interval).
SIGMA_BINS = 3.0
JUMP_LOGP = -6.0
EMISSION_FLOOR = 1e-4


def viterbi_bins(probs: torch.Tensor) -> torch.Tensor:
    """The most likely path of bins through CREPE's activations.

    Emissions are the activations normalised per frame. torchcrepe's own Viterbi takes a
    softmax of the (sigmoid, 0..1) activations, which is nearly flat, so its transition
    costs win and the path sticks: on a low bassoon it held 1.9 kHz through whole phrases.

    Args:
        probs: [batch, 360, frames]; bins outside fmin..fmax are -inf.
    Returns:
        [batch, frames] long.
    """
    p = torch.nan_to_num(probs.double(), nan=0.0, neginf=0.0, posinf=0.0).clamp_min(0.0)
    allowed = (
        ~torch.isneginf(probs[0, :, 0])
        if probs.shape[-1]
        else torch.ones(probs.shape[1], dtype=torch.bool)
    )
    lo = int(allowed.float().argmax())
    hi = lo + int(allowed.sum())
    p = p[:, lo:hi]
    n_batch, n_states, n_frames = p.shape
    emit = torch.log(p / p.sum(1, keepdim=True).clamp_min(1e-12) + EMISSION_FLOOR).numpy()
    band = int(np.ceil(SIGMA_BINS * np.sqrt(-2.0 * JUMP_LOGP)))
    shifts = np.arange(-band, band + 1)
    local = -0.5 * (shifts / SIGMA_BINS) ** 2
    out = np.zeros((n_batch, n_frames), np.int64)
    for b in range(n_batch):
        score = emit[b, :, 0].copy()
        back = np.zeros((n_frames, n_states), np.int32)
        states = np.arange(n_states)
        for t in range(1, n_frames):
            # best predecessor within the band (one shifted copy per distance) or anywhere
            padded = np.pad(score, band, constant_values=-np.inf)
            cand = (
                np.stack([padded[band + s : band + s + n_states] for s in shifts]) + local[:, None]
            )
            k = cand.argmax(0)
            best_local = cand[k, states]
            far = int(score.argmax())
            use_far = score[far] + JUMP_LOGP > best_local
            back[t] = np.where(use_far, far, states + shifts[k])
            score = np.maximum(best_local, score[far] + JUMP_LOGP) + emit[b, :, t]
        path = np.zeros(n_frames, np.int64)
        path[-1] = int(score.argmax()) if n_frames else 0
        for t in range(n_frames - 1, 0, -1):
            path[t - 1] = back[t, path[t]]
        out[b] = path + lo
    return torch.from_numpy(out)


def decode_viterbi(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Viterbi path over CREPE's bins (``viterbi_bins``), refined by a local average.
    Deterministic (torchcrepe's decoders add ±20 cents of random dither to every frame)."""
    bins = viterbi_bins(probs)
    return bins, _local_average_hz(probs, bins)


def decode_argmax(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-wise argmax refined by a local average (CREPE's original decoding)."""
    bins = torch.nan_to_num(probs, neginf=-1.0).argmax(dim=1)
    return bins, _local_average_hz(probs, bins)


def decode_torchcrepe_viterbi(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchcrepe's Viterbi (softmax of the activations), refined by a local average: the
    decoding of features v2, kept for comparison (experiments/feature_validation)."""
    import torchcrepe

    bins, _ = torchcrepe.decode.viterbi(probs)
    return bins, _local_average_hz(probs, bins)


DECODERS = {
    "viterbi": decode_viterbi,
    "argmax": decode_argmax,
    "torchcrepe_viterbi": decode_torchcrepe_viterbi,
}


def to_frame_rate(values: torch.Tensor, hop: int, analysis_hop: int, n_frames: int) -> torch.Tensor:
    """Linear interpolation of a track whose frame j is centred at j * analysis_hop onto
    frames centred at m * hop, m < n_frames; held flat past either end. values [frames]."""
    if analysis_hop == hop:
        return values[:n_frames]
    src = np.arange(len(values), dtype=np.float64) * analysis_hop
    dst = np.arange(n_frames, dtype=np.float64) * hop
    out = np.interp(dst, src, values.double().numpy())
    return torch.from_numpy(out).to(values.dtype)


def extract_f0(audio: np.ndarray, s: FeatureSettings) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz and periodicity per frame, frames centred at m * hop_length. Deterministic.
    CREPE runs every ``s.f0_hop`` samples; a coarser hop is interpolated (f0 in log
    frequency) to the frame rate before the octave check.

    Returns:
        Two arrays of shape [len(audio) // hop_length]; f0 is always within [fmin, fmax].
    """
    import torchcrepe

    if s.f0_fmin < 32.0:
        raise ValueError(f"f0_fmin: {s.f0_fmin} Hz is below CREPE's lowest bin (32 Hz)")
    if s.f0_decoder not in DECODERS:
        raise ValueError(f"f0_decoder: expected one of {sorted(DECODERS)}, got {s.f0_decoder!r}")
    if s.f0_hop < 1:
        raise ValueError(f"f0_hop_length: expected a positive number of samples, got {s.f0_hop}")
    n_frames = len(audio) // s.hop_length
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    with torch.inference_mode():
        f0, periodicity = torchcrepe.predict(
            x,
            s.sample_rate,
            hop_length=s.f0_hop,
            fmin=s.f0_fmin,
            fmax=s.f0_fmax,
            model=s.f0_model,
            decoder=DECODERS[s.f0_decoder],
            return_periodicity=True,
            batch_size=s.f0_batch_size,
            device="cpu",
            pad=True,
        )
    f0 = torch.exp2(to_frame_rate(torch.log2(f0[0]), s.hop_length, s.f0_hop, n_frames))
    periodicity = torch.nan_to_num(periodicity[0], nan=0.0, neginf=0.0, posinf=1.0)
    periodicity = to_frame_rate(periodicity, s.hop_length, s.f0_hop, n_frames)
    if s.f0_octave_check and n_frames:
        from ddsp_morph.dsp.pitch import harmonic_divisor

        f0 = f0 / harmonic_divisor(
            x[0], f0, sample_rate=s.sample_rate, hop_length=s.hop_length, fmin=s.f0_fmin
        )
    f0 = f0.numpy().astype(np.float32)
    periodicity = periodicity.numpy().astype(np.float32)
    return np.clip(f0, s.f0_fmin, s.f0_fmax), periodicity


def extract_loudness(audio: np.ndarray, s: FeatureSettings) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    ld = a_weighted_loudness_db(
        x, sample_rate=s.sample_rate, hop_length=s.hop_length, n_fft=s.loudness_n_fft
    )
    return ld[0].numpy().astype(np.float32)


def compute_features(audio: np.ndarray, s: FeatureSettings) -> dict[str, np.ndarray]:
    f0, periodicity = extract_f0(audio, s)
    return {"f0_hz": f0, "periodicity": periodicity, "loudness_db": extract_loudness(audio, s)}


def _cached(
    audio: np.ndarray, path: Path, key: str, names: tuple[str, ...], compute
) -> tuple[dict[str, np.ndarray], bool]:
    """``names`` of ``audio`` from the cache entry at ``path`` when it is complete and was made
    from this audio (SHA-1) with these settings (``key``); else ``compute(audio)``, written
    atomically. A truncated, stale or foreign entry is redone. Returns (features, was_cached)."""
    digest = sha1_array(audio)
    entry = load_npz(path)
    if (
        entry is not None
        and str(entry.get("audio_sha1")) == digest
        and str(entry.get("settings")) == key
        and all(k in entry for k in names)
    ):
        return {k: entry[k] for k in names}, True
    feats = compute(audio)
    save_npz(path, audio_sha1=np.array(digest), settings=np.array(key), **feats)
    return feats, False


def cached_features(
    audio: np.ndarray, path: Path, s: FeatureSettings
) -> tuple[dict[str, np.ndarray], bool]:
    """f0, periodicity and loudness of ``audio``, cached at ``path``. Returns (features, was_cached)."""
    return _cached(
        audio,
        path,
        s.key(),
        ("f0_hz", "periodicity", "loudness_db"),
        lambda a: compute_features(a, s),
    )


# Context features (Exercise 3): descriptors beside f0 and loudness, cached in their own file
# (``<example>.ctx.npz``) so that changing them never recomputes CREPE.
CONTEXT_VERSION = 1
CONTEXT_FEATURES = ("centroid_hz", "flatness_db", "mfcc", "roughness")


@dataclass(frozen=True)
class ContextSettings:
    sample_rate: int = 16000
    hop_length: int = 128
    n_fft: int = 1024  # centroid, flatness and MFCC
    n_mfcc: int = 20
    n_mels: int = 64
    roughness_n_fft: int = 4096
    roughness_peaks: int = 20

    def key(self) -> str:
        return (
            f"ctx{CONTEXT_VERSION}|{self.sample_rate}|{self.hop_length}|{self.n_fft}|"
            f"{self.n_mfcc}|{self.n_mels}|{self.roughness_n_fft}|{self.roughness_peaks}"
        )

    def mfcc_bases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The Slaney mel filterbank (fmin 20 Hz) and an orthonormal DCT-II."""
        return mfcc_bases(self.sample_rate, self.n_fft, self.n_mels, self.n_mfcc)


def mfcc_bases(
    sample_rate: int, n_fft: int, n_mels: int, n_mfcc: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Slaney mel filterbank (fmin 20 Hz, as librosa's) and an orthonormal DCT-II."""
    from ddsp_morph.dsp.filters import dct_matrix, mel_filterbank

    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc ({n_mfcc}) must be <= n_mels ({n_mels})")
    mel = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=20.0)
    return torch.from_numpy(mel), torch.from_numpy(dct_matrix(n_mels, n_mfcc))


def context_path(feature_path: Path) -> Path:
    return feature_path.with_name(feature_path.name.removesuffix(".npz") + ".ctx.npz")


def compute_context(audio: np.ndarray, s: ContextSettings) -> dict[str, np.ndarray]:
    """Spectral centroid (Hz), spectral flatness (dB), MFCC [n_frames, n_mfcc] and Vassilakis
    roughness, at the model frame rate (frame m centred at m * hop_length)."""
    from ddsp_morph.dsp import descriptors as d

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    mel, dct = s.mfcc_bases()
    sr, hop = s.sample_rate, s.hop_length
    with torch.inference_mode():
        out = {
            "centroid_hz": d.spectral_centroid_hz(x, sample_rate=sr, hop_length=hop, n_fft=s.n_fft),
            "flatness_db": d.spectral_flatness_db(x, hop_length=hop, n_fft=s.n_fft),
            "mfcc": d.mfcc(x, mel_basis=mel, dct_basis=dct, hop_length=hop),
            "roughness": d.roughness(
                x,
                sample_rate=sr,
                hop_length=hop,
                n_fft=s.roughness_n_fft,
                max_peaks=s.roughness_peaks,
            ),
        }
    return {k: v[0].numpy().astype(np.float32) for k, v in out.items()}


def cached_context(
    audio: np.ndarray, path: Path, s: ContextSettings
) -> tuple[dict[str, np.ndarray], bool]:
    """Context features of ``audio``, cached at ``path``. Returns (features, was_cached)."""
    return _cached(audio, path, s.key(), CONTEXT_FEATURES, lambda a: compute_context(a, s))
