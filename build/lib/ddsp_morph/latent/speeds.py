"""How fast the timbre changes along a path between two instrument centroids: the path speed
tables that make the mod wheel's steps even (stored with every checkpoint)."""

from __future__ import annotations

import numpy as np
import torch

from ddsp_morph.dsp.filters import mel_filterbank
from ddsp_morph.dsp.spectral import mel_band_db
from ddsp_morph.latent.geometry import path_points

SPEED_BANDS, SPEED_FFT = 40, 1024


def with_speeds(latent: dict, model, dataset, instruments: list[str], kind: str) -> dict:
    """``latent`` with the timbre-speed tables of ``kind`` paths, measured now where it has none
    (a checkpoint written before they were stored, or a path kind that is not stored)."""
    if (latent.get("path_speed") or {}).get(kind) is not None:
        return latent
    speeds = path_speeds(model, dataset, instruments, latent["centroids"], kind=kind)
    return {**latent, "path_speed": {**(latent.get("path_speed") or {}), kind: speeds}}


def dry_render(model, batch: dict[str, torch.Tensor], *, seed: int = 0) -> torch.Tensor:
    """The model's dry output (harmonic + noise, no reverb) for a batch carrying z, with the
    same white noise in every row: rows differ by their timbre only. Shape [batch, n_samples]."""
    f0 = batch["f0_hz"]
    inputs = model.decoder_inputs(batch)
    inputs["z"] = model.latent(batch, f0.shape[1])["z"]
    controls = model.synth.get_controls({k: v.float() for k, v in model.decoder(inputs).items()})
    synth = model.synth
    audio = synth.harmonic(f0.float(), controls["amplitude"], controls["harmonic_distribution"])
    if synth.noise is not None:
        g = torch.Generator().manual_seed(seed)
        white = torch.rand(1, audio.shape[-1], generator=g) * 2 - 1
        noise = synth.noise(controls["noise_magnitudes"], noise=white.expand(len(f0), -1))
        audio = audio + noise[..., : audio.shape[-1]]
    return audio


def repeated_clips(
    group: list[dict[str, torch.Tensor]], n: int, max_frames: int, hop: int
) -> dict[str, torch.Tensor]:
    """The clips of ``group`` cut to one length (at most ``max_frames``), each repeated ``n``
    times in a row: one batch of ``len(group) * n`` rows, to render each clip at n points."""
    frames = min(max_frames, *(int(it["f0_hz"].shape[0]) for it in group))
    out = {}
    for k in group[0]:
        rows = []
        for it in group:
            v = it[k]
            if k == "audio":
                v = v[: frames * hop]
            elif v.ndim >= 1 and v.shape[0] == it["f0_hz"].shape[0]:
                v = v[:frames]
            rows.append(v.unsqueeze(0).expand(n, *v.shape))
        out[k] = torch.cat(rows)
    return out


SPEED_POINTS = 17  # points per path where the timbre is described


SPEED_SECONDS = 1.5  # of each clip


SPEED_CLIPS = 4  # clips of the source instrument per path (REPORT, study 13)


@torch.no_grad()
def path_speeds(
    model,
    dataset,
    instruments: list[str],
    centroids: dict[str, list[float]],
    *,
    kind: str = "slerp",
    n_points: int = SPEED_POINTS,
    seconds: float = SPEED_SECONDS,
    clips: int = SPEED_CLIPS,
) -> dict[str, list[float]]:
    """How fast the timbre changes along the path from every instrument's centroid to every
    other's, so that a morph control can move it evenly (``latent.geometry.even_alphas``).

    The path A -> B is walked by A's performances, as the morph table and a conversion walk it:
    the first ``seconds`` of the first ``clips`` clips of A are rendered at ``n_points``
    equally spaced alphas; each render is described by its spectral envelope (the mean over its
    sounding frames of 40 mel bands, dB) and the change between neighbouring points (Euclidean,
    summed over the clips) is accumulated. Returns "A>B" for every ordered pair -> cumulative
    change, 0 at A and 1 at B, Shape [n_points]. A model whose envelope does not move gets the
    straight ramp."""

    names = sorted(centroids)
    if len(names) < 2 or model.encoder is None:
        return {}
    if clips < 1:
        raise ValueError(f"clips: need at least 1, got {clips}")
    by_name: dict[str, list[dict[str, torch.Tensor]]] = {}
    for item in dataset.items:
        group = by_name.setdefault(instruments[int(item["instrument_id"])], [])
        if len(group) < clips:
            group.append(item)
    hop = model.synth.hop_length
    sr = model.synth.sample_rate
    basis = torch.as_tensor(
        mel_filterbank(sample_rate=sr, n_fft=SPEED_FFT, n_mels=SPEED_BANDS, fmin=30.0),
        dtype=torch.float32,
    )

    def envelope(audio: torch.Tensor) -> torch.Tensor:
        db = mel_band_db(audio, basis, SPEED_FFT // 4)  # [n, bands, t]
        energy = db.amax(dim=1, keepdim=True)
        w = (energy > energy.amax(dim=2, keepdim=True) - 50.0).float()
        return (db * w).sum(-1) / w.sum(-1).clamp_min(1.0)

    was_training = model.training
    model.eval()
    ramp = np.linspace(0.0, 1.0, n_points)
    frames = int(seconds * sr / hop)
    batches = {
        name: repeated_clips(group, n_points, frames, hop) for name, group in by_name.items()
    }
    out: dict[str, list[float]] = {}
    for a in names:
        for b in names:
            if a == b:
                continue
            zs = torch.as_tensor(
                path_points(
                    np.asarray(centroids[a], np.float32),
                    np.asarray(centroids[b], np.float32),
                    n_points,
                    kind,
                ),
                dtype=torch.float32,
            )
            change = np.zeros(n_points - 1)
            if a in batches:
                batch = {**batches[a], "z": zs.repeat(len(by_name[a]), 1)}
                env = envelope(dry_render(model, batch)).reshape(-1, n_points, SPEED_BANDS)
                change = torch.linalg.vector_norm(env[:, 1:] - env[:, :-1], dim=-1).sum(0).numpy()
            u = np.concatenate([[0.0], np.cumsum(change)])
            moved = u[-1] > 1e-3  # dB, summed over the path: below it the timbre is still
            out[f"{a}>{b}"] = (u / u[-1] if moved else ramp).astype(float).tolist()
    model.train(was_training)
    return out
