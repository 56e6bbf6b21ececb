"""Frame-rate features: f0 and periodicity (torchcrepe), A-weighted loudness; cached on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.data.io import load_npz, save_npz, sha1_array
from ddsp_morph.dsp.loudness import a_weighted_loudness_db

# v2: deterministic decoding (local average around the decoded bin instead of torchcrepe's
# random dither).
FEATURES_VERSION = 2
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
    loudness_n_fft: int = 1024

    def key(self) -> str:
        return f"v{FEATURES_VERSION}|{self.sample_rate}|{self.hop_length}|{self.f0_model}|{self.f0_fmin}|{self.f0_fmax}|{self.f0_decoder}|{self.loudness_n_fft}"


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


def decode_viterbi(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Viterbi path over CREPE's bins (torchcrepe's), refined by a local average. torchcrepe's
    own decoders add random triangular dither of ±20 cents to every frame, which makes features
    non-reproducible and adds ~8 cents of noise; this one is deterministic."""
    import torchcrepe

    bins, _ = torchcrepe.decode.viterbi(probs)
    return bins, _local_average_hz(probs, bins)


def decode_argmax(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-wise argmax refined by a local average (CREPE's original decoding)."""
    bins = torch.nan_to_num(probs, neginf=-1.0).argmax(dim=1)
    return bins, _local_average_hz(probs, bins)


DECODERS = {"viterbi": decode_viterbi, "argmax": decode_argmax}


def extract_f0(audio: np.ndarray, s: FeatureSettings) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz and periodicity per frame, frames centred at m * hop_length. Deterministic.

    Returns:
        Two arrays of shape [len(audio) // hop_length]; f0 is always within [fmin, fmax].
    """
    import torchcrepe

    if s.f0_fmin < 32.0:
        raise ValueError(f"f0_fmin: {s.f0_fmin} Hz is below CREPE's lowest bin (32 Hz)")
    if s.f0_decoder not in DECODERS:
        raise ValueError(f"f0_decoder: expected one of {sorted(DECODERS)}, got {s.f0_decoder!r}")
    n_frames = len(audio) // s.hop_length
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    with torch.inference_mode():
        f0, periodicity = torchcrepe.predict(
            x,
            s.sample_rate,
            hop_length=s.hop_length,
            fmin=s.f0_fmin,
            fmax=s.f0_fmax,
            model=s.f0_model,
            decoder=DECODERS[s.f0_decoder],
            return_periodicity=True,
            batch_size=s.f0_batch_size,
            device="cpu",
            pad=True,
        )
    f0 = f0[0, :n_frames].numpy().astype(np.float32)
    periodicity = periodicity[0, :n_frames].numpy().astype(np.float32)
    periodicity = np.nan_to_num(periodicity, nan=0.0, neginf=0.0, posinf=1.0)
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
