"""Spectra and the multi-scale spectral loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


class _RealFFT(torch.autograd.Function):
    """``torch.fft.rfft`` over the last dimension, differentiated by its adjoint: one inverse
    real FFT of the gradient (end bins doubled, scaled by n / 2). torch's own backward of the
    one-sided transform pads the gradient to the full spectrum and runs a complex FFT, which
    measured ten times the forward's cost on the loss's frames; this is the same gradient."""

    @staticmethod
    def forward(ctx, frames):
        ctx.n = frames.shape[-1]
        return torch.fft.rfft(frames, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        n = ctx.n
        grad = grad.clone()
        grad[..., 0] *= 2.0
        if n % 2 == 0:
            grad[..., -1] *= 2.0
        return torch.fft.irfft(grad, n=n, dim=-1) * (n / 2)


def frame_spectrum(
    audio: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    *,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """Complex spectrum of centred frames, frame-major: ``torch.stft(audio, n_fft, hop,
    window=window, center=True, pad_mode=pad_mode)`` transposed, with the same values, and a
    backward pass that costs about a third of torch.stft's (``_RealFFT``).

    Args:
        audio: Shape [batch, n_samples].
        window: Shape [n_fft].

    Returns:
        Shape [batch, 1 + n_samples // hop, n_fft // 2 + 1], complex.
    """
    half = n_fft // 2
    padded = torch.nn.functional.pad(audio.unsqueeze(1), (half, half), mode=pad_mode).squeeze(1)
    frames = padded.unfold(-1, n_fft, hop) * window
    if frames.requires_grad:
        return _RealFFT.apply(frames)
    return torch.fft.rfft(frames, dim=-1)


def power_spectrum(spec: torch.Tensor) -> torch.Tensor:
    """|spec|^2 as re^2 + im^2, a real tensor of ``spec``'s shape."""
    parts = torch.view_as_real(spec)
    re, im = parts[..., 0], parts[..., 1]
    return torch.addcmul(re * re, im, im)


def _over_magnitude(x: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """x / mag in place on ``x``, 0 where mag = 0: with ``spec *`` it gives a gradient through
    |spec| by ``torch.sgn``'s convention (0 at 0)."""
    return x.div_(mag).masked_fill_(mag == 0, 0.0)


class _Magnitude(torch.autograd.Function):
    """|spec| with ``Tensor.abs``'s gradient, ``grad * spec / |spec|`` and 0 where |spec| = 0.
    The gradient of sqrt(re^2 + im^2) through autograd is 0 * inf = NaN at an all-zero bin (a
    silent frame), which made training skip every step whose batch held one."""

    @staticmethod
    def forward(ctx, spec):  # type: ignore[override]
        mag = power_spectrum(spec).sqrt_()
        ctx.save_for_backward(spec, mag)
        return mag

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        spec, mag = ctx.saved_tensors
        return spec * _over_magnitude(grad.clone(), mag)


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """|spec| as sqrt(re^2 + im^2): several times faster than ``Tensor.abs`` of a complex
    tensor on the CPU (which calls hypot per element), with the same gradient (0 at 0); not
    for values near float overflow."""
    if spec.requires_grad and torch.is_grad_enabled():
        return _Magnitude.apply(spec)
    return power_spectrum(spec).sqrt_()


def _hop(n_fft: int, overlap: float) -> int:
    return max(1, int(n_fft * (1.0 - overlap)))


def _hann(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    return torch.hann_window(n_fft, dtype=like.dtype, device=like.device)


def stft(audio: torch.Tensor, n_fft: int, *, overlap: float = 0.75) -> torch.Tensor:
    """Complex STFT with a periodic Hann window, centred frames, hop = n_fft * (1 - overlap).

    Args:
        audio: Shape [batch, n_samples].

    Returns:
        Shape [batch, n_fft // 2 + 1, n_frames], complex.
    """
    return frame_spectrum(audio, n_fft, _hop(n_fft, overlap), _hann(n_fft, audio)).transpose(1, 2)


def stft_magnitude(audio: torch.Tensor, n_fft: int, *, overlap: float = 0.75) -> torch.Tensor:
    """|stft(audio)|. Shape [batch, n_fft // 2 + 1, n_frames]."""
    return magnitude(stft(audio, n_fft, overlap=overlap))


def _magnitude_errors(mag, mag_true, log_true, eps):
    return mag - mag_true, torch.log(mag + eps) - log_true


class _FusedMagnitudeLoss(torch.autograd.Function):
    """``linear_weight * mean|m - m_t| + log_weight * mean|log(m + eps) - log(m_t + eps)|`` with
    ``m = |spec|``, from the complex spectrum ``spec``. The forward pass also forms the gradient
    with respect to ``spec`` (``dL/dm * spec / |spec|``, PyTorch's convention for complex
    inputs) and keeps only that one complex tensor for the backward pass, instead of the
    magnitudes, logs and differences that autograd would hold and then walk back through
    op by op (the complex ``abs`` backward alone was a quarter of the loss's time)."""

    @staticmethod
    def forward(ctx, spec, mag_true, log_true, linear_weight, log_weight, eps):
        mag = magnitude(spec)
        lin_err, log_err = _magnitude_errors(mag, mag_true, log_true, eps)
        n = mag.numel()
        loss = linear_weight * lin_err.abs().mean() + log_weight * log_err.abs().mean()
        if ctx.needs_input_grad[0]:
            dmag = torch.sign(log_err).div_(mag + eps).mul_(log_weight / n)
            dmag.add_(torch.sign(lin_err), alpha=linear_weight / n)
            ctx.save_for_backward(spec * _over_magnitude(dmag, mag))
        return loss

    @staticmethod
    def backward(ctx, grad):
        (dspec,) = ctx.saved_tensors
        return grad * dspec, None, None, None, None, None


def _scale_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    n_fft: int,
    overlap: float,
    linear_weight: float,
    log_weight: float,
    eps: float,
    fused: bool,
) -> torch.Tensor:
    hop, window = _hop(n_fft, overlap), _hann(n_fft, pred)
    with torch.no_grad():
        mag_true = magnitude(frame_spectrum(target, n_fft, hop, window))
        log_true = torch.log(mag_true + eps)
    spec = frame_spectrum(pred, n_fft, hop, window)  # frame-major: contiguous, same sums
    if fused:
        return _FusedMagnitudeLoss.apply(spec, mag_true, log_true, linear_weight, log_weight, eps)
    lin_err, log_err = _magnitude_errors(spec.abs(), mag_true, log_true, eps)
    return linear_weight * lin_err.abs().mean() + log_weight * log_err.abs().mean()


def multiscale_spectral_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
    overlap: float = 0.75,
    linear_weight: float = 1.0,
    log_weight: float = 1.0,
    eps: float = 1e-7,
    fused: bool = True,
) -> torch.Tensor:
    """Sum over FFT sizes of mean |S_pred - S_target| + log_weight * mean |log S_pred - log S_target|.

    Args:
        pred, target: Shape [batch, n_samples]. No gradient flows to ``target``.
        fused: form each scale's gradient with respect to the complex spectrum in the forward
            pass and keep only it (about 16 MB per scale for 16 x 4 s) rather than the
            magnitudes, logs and differences; ``False`` composes plain autograd ops (the
            reference the tests compare against). Same value and gradient.

    Returns:
        A scalar, float32 (computed with autocast off, whatever precision the model runs in).
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must match: got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    with torch.autocast(pred.device.type, enabled=False):
        pred = pred if pred.dtype == torch.float64 else pred.float()
        target = target.to(pred.dtype)
        loss = pred.new_zeros(())
        for n_fft in fft_sizes:
            loss = loss + _scale_loss(
                pred, target, n_fft, overlap, linear_weight, log_weight, eps, fused
            )
    return loss


def mel_band_db(audio: torch.Tensor, mel_basis: torch.Tensor, hop: int) -> torch.Tensor:
    """Mel band levels in dB of a centred Hann STFT. Shape [batch, n_bands, n_frames]."""
    n_fft = (mel_basis.shape[-1] - 1) * 2
    power = power_spectrum(frame_spectrum(audio, n_fft, hop, _hann(n_fft, audio)))
    bands = (power @ mel_basis.to(power.dtype).T).transpose(1, 2)  # [batch, bands, frames]
    return 10.0 * torch.log10(bands.clamp_min(1e-10))


def _sounding_frames(ref_db: torch.Tensor, n_fft: int, hop: int, top_db: float) -> torch.Tensor:
    """Weights of the frames that count: within ``top_db`` of the loudest, the window not
    reaching into the centring padding. Shape [batch, n_frames]."""
    energy = ref_db.detach().amax(dim=1)  # [batch, frames]
    sounding = (energy > energy.amax(dim=1, keepdim=True) - top_db).to(ref_db.dtype)
    edge = -(-n_fft // (2 * hop))  # frames whose window reaches into the centring padding
    sounding[:, :edge] = 0
    sounding[:, sounding.shape[1] - edge :] = 0
    return sounding


def _sounding_changes(ref_db: torch.Tensor, n_fft: int, hop: int, top_db: float) -> torch.Tensor:
    """Weights of the frame-to-frame changes that count: both frames sounding
    (``_sounding_frames``). Shape [batch, 1, n_frames - 1]."""
    return _both_sounding(_sounding_frames(ref_db, n_fft, hop, top_db))


def _both_sounding(frames: torch.Tensor) -> torch.Tensor:
    """Frame weights [batch, n_frames] -> change weights [batch, 1, n_frames - 1]."""
    return (frames[:, 1:] * frames[:, :-1]).unsqueeze(1)


def _weighted_mean_std(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over the last axis of ``x`` with weights ``w`` (broadcast to it)."""
    n = w.sum(dim=-1).clamp_min(1.0)
    mean = (w * x).sum(dim=-1) / n
    var = (w * (x - mean.unsqueeze(-1)).square()).sum(dim=-1) / n
    return mean, torch.sqrt(var + 1e-6)


def _change_std(db: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return _weighted_mean_std(db[..., 1:] - db[..., :-1], w)[1]


def band_statistics(
    audio: torch.Tensor, mel_basis: torch.Tensor, *, hop: int, top_db: float = 50.0
) -> torch.Tensor:
    """A clip summarized as a listener comparing instruments hears it: over its sounding frames
    (``_sounding_frames`` of the audio itself), the mean and std of every mel band's level in
    dB, and the mean and std of its frame-to-frame change. Differentiable.

    Args:
        audio: Shape [batch, n_samples].
        mel_basis: Shape [n_bands, n_fft // 2 + 1] (its width sets n_fft).

    Returns:
        Shape [batch, 4 * n_bands]: level mean, level std, change mean, change std.
    """
    n_fft = (mel_basis.shape[-1] - 1) * 2
    db = mel_band_db(audio, mel_basis, hop)
    frames = _sounding_frames(db, n_fft, hop, top_db)
    level = _weighted_mean_std(db, frames.unsqueeze(1))
    change = _weighted_mean_std(db[..., 1:] - db[..., :-1], _both_sounding(frames))
    return torch.cat([*level, change[0], change[1]], dim=-1)


def band_fluctuation(
    audio: torch.Tensor,
    mel_basis: torch.Tensor,
    *,
    hop: int,
    top_db: float = 50.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """How much each band's level moves from one frame to the next: the standard deviation over
    frames of the frame-to-frame change of the band's level in dB (mel bands of a centred Hann
    STFT). Only frames where ``reference`` (default: ``audio``) is within ``top_db`` of its
    loudest frame count, so silences and fades do not dilute it, and none whose window reaches
    into the centring padding at either end.

    A decoder driven by smooth controls renders steadier bands than a real instrument (bow,
    breath, the sample's own tremolo); this is the statistic it falls short on.

    Args:
        audio, reference: Shape [batch, n_samples].
        mel_basis: Shape [n_bands, n_fft // 2 + 1] (its width sets n_fft).

    Returns:
        Shape [batch, n_bands], dB per frame.
    """
    n_fft = (mel_basis.shape[-1] - 1) * 2
    db = mel_band_db(audio, mel_basis, hop)
    ref = db if reference is None else mel_band_db(reference.to(audio.dtype), mel_basis, hop)
    return _change_std(db, _sounding_changes(ref, n_fft, hop, top_db))


def fluctuation_loss(
    pred: torch.Tensor, target: torch.Tensor, mel_basis: torch.Tensor, *, hop: int
) -> torch.Tensor:
    """Mean |band_fluctuation(pred) - band_fluctuation(target)| over clips and bands, both on
    the frames where the target sounds (the target analysed once). A statistic of each clip,
    not a frame-by-frame match: the decoder is asked for as much movement as the instrument
    has, not for the same movement at the same instant (which the controls cannot tell it).
    Float32, no gradient to target."""
    with torch.autocast(pred.device.type, enabled=False):
        pred, target = pred.float(), target.float().detach()
        n_fft = (mel_basis.shape[-1] - 1) * 2
        target_db = mel_band_db(target, mel_basis, hop)
        w = _sounding_changes(target_db, n_fft, hop, 50.0)
        got = _change_std(mel_band_db(pred, mel_basis, hop), w)
        return (got - _change_std(target_db, w)).abs().mean()
