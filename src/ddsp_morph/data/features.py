"""Frame-rate features: f0 and periodicity (torchcrepe), A-weighted loudness; cached on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.data.io import load_npz, save_npz, sha1_array
from ddsp_morph.dsp.loudness import a_weighted_loudness_db

FEATURES_VERSION = 1


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


def extract_f0(audio: np.ndarray, s: FeatureSettings) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz and periodicity per frame, frames centred at m * hop_length.

    Returns:
        Two arrays of shape [len(audio) // hop_length]; f0 is always within [fmin, fmax].
    """
    import torchcrepe

    if s.f0_fmin < 32.0:
        raise ValueError(f"f0_fmin: {s.f0_fmin} Hz is below CREPE's lowest bin (32 Hz)")
    decoders = {
        "viterbi": torchcrepe.decode.viterbi,
        "argmax": torchcrepe.decode.argmax,
        "weighted_argmax": torchcrepe.decode.weighted_argmax,
    }
    if s.f0_decoder not in decoders:
        raise ValueError(f"f0_decoder: expected one of {sorted(decoders)}, got {s.f0_decoder!r}")
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
            decoder=decoders[s.f0_decoder],
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


def cached_features(
    audio: np.ndarray, path: Path, s: FeatureSettings
) -> tuple[dict[str, np.ndarray], bool]:
    """Features for ``audio``, from ``path`` when it holds a complete entry for this audio and
    these settings, else computed and written atomically.

    Returns:
        (features, was_cached).
    """
    digest = sha1_array(audio)
    entry = load_npz(path)
    if (
        entry is not None
        and str(entry.get("audio_sha1")) == digest
        and str(entry.get("settings")) == s.key()
    ):
        return {k: entry[k] for k in ("f0_hz", "periodicity", "loudness_db")}, True
    feats = compute_features(audio, s)
    save_npz(path, audio_sha1=np.array(digest), settings=np.array(s.key()), **feats)
    return feats, False
