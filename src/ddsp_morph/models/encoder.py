"""The timbre encoder: MFCC frames -> GRU -> z, deterministic (ae) or variational (vae)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ddsp_morph.dsp.core import hz_to_midi
from ddsp_morph.dsp.descriptors import frame_power, harmonic_levels, mfcc
from ddsp_morph.dsp.filters import dct_matrix, mel_filterbank
from ddsp_morph.models.gru import run_gru


class MFCC(nn.Module):
    """MFCCs at the model's frame rate: frame m is centred at sample m * hop_length.

    Hann-windowed STFT (zero-padded, centred) -> power -> mel filterbank (librosa's Slaney mel)
    -> natural log (floored at 1e-10, as librosa.power_to_db) -> orthonormal DCT-II. Equal to ``librosa.feature.mfcc`` (same n_fft, hop,
    n_mels, fmin=20, top_db=None) times ln(10) / 10.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        hop_length: int = 128,
        n_fft: int = 1024,
        n_mels: int = 64,
        n_mfcc: int = 30,
    ) -> None:
        super().__init__()
        if n_mfcc > n_mels:
            raise ValueError(f"n_mfcc ({n_mfcc}) must be <= n_mels ({n_mels})")
        self.hop_length, self.n_fft = hop_length, n_fft
        mel = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=20.0)
        dct = dct_matrix(n_mels, n_mfcc)
        self.register_buffer("mel", torch.from_numpy(mel), persistent=False)
        self.register_buffer("dct", torch.from_numpy(dct), persistent=False)

    def power(self, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """The STFT power the MFCCs are made of. Shape [batch, n_frames, n_fft // 2 + 1]."""
        return frame_power(audio, n_fft=self.n_fft, hop_length=self.hop_length, n_frames=n_frames)

    def forward(
        self, audio: torch.Tensor, n_frames: int, power: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Args: audio Shape [batch, n_samples]; power: ``self.power(audio, n_frames)`` when the
        caller has it already. Returns Shape [batch, n_frames, n_mfcc]."""
        return mfcc(
            audio,
            mel_basis=self.mel,
            dct_basis=self.dct,
            hop_length=self.hop_length,
            n_frames=n_frames,
            power=power,
        )


class TimbreEncoder(nn.Module):
    """audio -> MFCC -> LayerNorm [+ pitch] -> GRU -> z.

    Args:
        z_dim: latent size.
        variational: True: (mu, logvar) heads and a reparameterized sample in training;
            False: a deterministic z (the DDSP paper's autoencoder).
        pooled: True: one timbre vector per clip (GRU outputs averaged over time),
            broadcast to every frame; False: a time-varying z per frame.
        pitch_input: True: the GRU also reads the clip's f0 (MIDI / 127 per frame), so that it
            can tell a timbre from the way a register shifts the MFCCs (a trumpet's top notes
            have clarinet-like MFCCs); forward then needs ``f0_hz``.
        harmonics: > 0: the GRU also reads the levels of the first ``harmonics`` harmonics of
            f0, relative to the strongest (``dsp.descriptors.harmonic_levels``): the
            instrument's harmonic envelope, which the register does not shift; needs
            ``f0_hz`` too.
        frame_stride: the encoder reads every ``frame_stride``-th frame of the model's frame
            rate (MFCCs at ``hop_length * frame_stride``): its GRU runs that many times fewer
            steps. A frame-wise z is held over the frames between.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        hop_length: int = 128,
        n_mfcc: int = 30,
        n_mels: int = 64,
        gru_size: int = 256,
        z_dim: int = 16,
        variational: bool = True,
        pooled: bool = True,
        prior: str = "standard",
        n_instruments: int = 1,
        prior_radius: float = 3.0,
        prior_std: float = 1.0,
        pitch_input: bool = False,
        harmonics: int = 0,
        frame_stride: int = 1,
    ) -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior: expected one of {list(PRIORS)}, got {prior!r}")
        if int(frame_stride) < 1:
            raise ValueError(f"frame_stride: expected an integer >= 1, got {frame_stride!r}")
        self.frame_stride = int(frame_stride)
        hop_length = hop_length * self.frame_stride  # the encoder's own frame hop
        self.mfcc = MFCC(
            sample_rate=sample_rate, hop_length=hop_length, n_mels=n_mels, n_mfcc=n_mfcc
        )
        self.norm = nn.LayerNorm(n_mfcc)
        self.pitch_input, self.harmonics = pitch_input, int(harmonics)
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.harmonic_norm = nn.LayerNorm(self.harmonics) if self.harmonics > 0 else None
        n_in = n_mfcc + int(pitch_input) + self.harmonics
        self.gru = nn.GRU(n_in, gru_size, batch_first=True)
        self.z_dim, self.variational, self.pooled = z_dim, variational, pooled
        self.head = nn.Linear(gru_size, 2 * z_dim if variational else z_dim)
        # The label prior: N(prior_mean[k], prior_std^2 I) for clips of instrument k, a
        # Gaussian mixture whose component is known from the corpus's folder labels. The means
        # are learned, starting on orthogonal directions at ``prior_radius`` from the origin.
        self.prior = prior if variational else "standard"
        self.prior_logvar = 2.0 * math.log(prior_std)
        if self.prior == "label":
            self.prior_mean = nn.Parameter(
                initial_prior_means(n_instruments, z_dim, radius=prior_radius)
            )

    def prior_params(self, instrument_id: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """The prior of each clip: (mean Shape [batch, 1, z_dim], log variance, a scalar).
        The standard prior, and a label prior given no labels (or a label it never saw), is
        N(0, I) there."""
        if self.prior == "standard" or instrument_id is None:
            return torch.zeros(1, 1, self.z_dim, device=self.head.weight.device), 0.0
        ids = instrument_id.long().reshape(-1)
        n = self.prior_mean.shape[0]
        if bool(((ids < 0) | (ids >= n)).any()):
            raise ValueError(f"instrument_id: expected 0..{n - 1}, got {ids.tolist()}")
        return self.prior_mean[ids].unsqueeze(1), self.prior_logvar

    def forward(
        self, audio: torch.Tensor, n_frames: int, f0_hz: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Args: audio Shape [batch, n_samples]; f0_hz Shape [batch, n_frames] (needed with
        ``pitch_input``, ignored otherwise). Returns z Shape [batch, n_frames, z_dim], and for
        the VAE mu and logvar (Shape [batch, 1 or n_frames, z_dim])."""
        # float32 under mixed precision too: the encoder is small, and its bf16 GRU measured
        # twice as slow as float32 on the CPU (the decoder is where bf16 pays)
        stride = self.frame_stride
        n_read = -(-n_frames // stride)  # frame j here is the model's frame j * stride
        with torch.autocast(audio.device.type, enabled=False):
            audio = audio.float()
            # one STFT for the MFCCs and the harmonic levels
            power = self.mfcc.power(audio, n_read) if self.harmonics else None
            x = self.norm(self.mfcc(audio, n_read, power))
            if self.pitch_input or self.harmonics:
                if f0_hz is None or f0_hz.shape[:2] != (x.shape[0], n_frames):
                    got = None if f0_hz is None else tuple(f0_hz.shape)
                    raise ValueError(
                        f"TimbreEncoder(pitch_input={self.pitch_input}, harmonics="
                        f"{self.harmonics}): f0_hz of Shape {(x.shape[0], n_frames)} is "
                        f"needed, got {got}"
                    )
                f0_hz = f0_hz.float()[:, ::stride]
            if self.pitch_input:
                x = torch.cat([x, (hz_to_midi(f0_hz) / 127.0).unsqueeze(-1)], dim=-1)
            if self.harmonic_norm is not None:
                levels = harmonic_levels(
                    audio,
                    f0_hz,
                    n_harmonics=self.harmonics,
                    sample_rate=self.sample_rate,
                    n_fft=self.mfcc.n_fft,
                    hop_length=self.hop_length,
                    power=power,
                )
                x = torch.cat([x, self.harmonic_norm(levels / 20.0)], dim=-1)
            h, _ = run_gru(self.gru, x)
            if self.pooled:
                h = h.mean(dim=1, keepdim=True)
            elif stride > 1:
                h = h.repeat_interleave(stride, dim=1)[:, :n_frames]
            out = self.head(h)
        if not self.variational:
            return {"z": out.expand(-1, n_frames, -1), "mu": out}
        mu, logvar = out.chunk(2, dim=-1)
        logvar = logvar.clamp(-12.0, 8.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return {"z": z.expand(-1, n_frames, -1), "mu": mu, "logvar": logvar}


PRIORS = ("standard", "label")


def initial_prior_means(n_instruments: int, z_dim: int, *, radius: float) -> torch.Tensor:
    """Starting means of the label prior: orthogonal unit directions (random ones when there are
    more instruments than dimensions) times ``radius``, from a fixed seed. Shape [n, z_dim]."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(max(n_instruments, z_dim), z_dim, generator=g)
    if n_instruments <= z_dim:
        q, _ = torch.linalg.qr(x.T)  # [z_dim, z_dim], orthonormal columns
        dirs = q.T[:n_instruments]
    else:
        dirs = x[:n_instruments] / x[:n_instruments].norm(dim=1, keepdim=True)
    return (dirs * radius).contiguous()


def kl_per_dim(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    prior_mean: torch.Tensor | float = 0.0,
    prior_logvar: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(prior_mean, exp(prior_logvar))) per latent dimension, averaged
    over batch and frames. The prior broadcasts against mu (Shape [batch, 1, z_dim] for a label
    prior); the defaults are N(0, 1).

    Returns:
        Shape [z_dim], nats.
    """
    prior_logvar = torch.as_tensor(prior_logvar, dtype=mu.dtype, device=mu.device)
    kl = 0.5 * (
        ((mu - prior_mean).pow(2) + logvar.exp()) * torch.exp(-prior_logvar)
        - 1.0
        - logvar
        + prior_logvar
    )
    return kl.reshape(-1, kl.shape[-1]).mean(dim=0)


def kl_loss(kl_dims: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """Sum over dimensions of max(KL_d, free_bits): dimensions under the free-bits floor carry
    no gradient pressure toward the prior (Kingma et al. 2016)."""
    return kl_dims.clamp_min(free_bits).sum() if free_bits > 0 else kl_dims.sum()


def beta_at(step: int, beta: float, warmup_steps: int) -> float:
    """Linear warm-up of the KL weight from 0 to ``beta`` over ``warmup_steps``."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)
