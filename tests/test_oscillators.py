import math

import numpy as np
import pytest
import torch

from ddsp_morph.dsp.oscillators import harmonic_synth, harmonic_synth_reference

SR, HOP = 16000, 64


def const(batch, frames, value, channels=None):
    shape = (batch, frames) if channels is None else (batch, frames, channels)
    return torch.full(shape, float(value))


def test_matches_float64_sum_of_sines_for_constant_controls():
    f0, n = 220.0, 8
    weights = np.array([1.0, 0.5, 0.25, 0.125, 0.0, 0.1, 0.2, 0.05])
    dist = torch.tensor(weights, dtype=torch.float32).expand(1, 100, n).contiguous()
    y = harmonic_synth(
        const(1, 100, f0), const(1, 100, 0.8, 1), dist, sample_rate=SR, hop_length=HOP
    )
    t = np.arange(100 * HOP) + 1  # phase[n] = 2 pi f0 (n + 1) / sr
    a = 0.8 * weights / weights.sum()
    ref = sum(a[k] * np.sin(2 * np.pi * f0 * (k + 1) * t / SR) for k in range(n))
    np.testing.assert_allclose(y[0].numpy(), ref, atol=2e-5)


def test_pure_tone_lands_on_its_fft_bin():
    n_fft = 16000  # 1 Hz bins
    frames = n_fft // HOP + 1
    y = harmonic_synth(
        const(1, frames, 440.0),
        const(1, frames, 1.0, 1),
        const(1, frames, 1.0, 1),
        sample_rate=SR,
        hop_length=HOP,
    )[0, :n_fft]
    spec = np.abs(np.fft.rfft(y.numpy() * np.hanning(n_fft)))
    assert int(np.argmax(spec)) == 440


def test_nothing_at_or_above_nyquist():
    # f0 = 3 kHz: harmonics 1..2 are below 8 kHz, harmonic 3 (9 kHz) and above must be silent;
    # with harmonics 3+ removed the distribution is renormalized over 1 and 2.
    frames, n = 300, 20
    dist = torch.ones(1, frames, n)
    y = harmonic_synth(
        const(1, frames, 3000.0), const(1, frames, 1.0, 1), dist, sample_rate=SR, hop_length=HOP
    )
    spec = np.abs(np.fft.rfft(y[0].numpy() * np.hanning(y.shape[1])))
    freqs = np.fft.rfftfreq(y.shape[1], 1 / SR)
    total = spec.sum()
    energy_above = spec[(freqs > 6500)].sum()
    assert energy_above / total < 1e-3
    peak_bins = freqs[np.argsort(spec)[-2:]]
    assert sorted(np.round(peak_bins / 1000).astype(int).tolist()) == [3, 6]
    # renormalized: each of the two harmonics has amplitude 0.5 -> RMS^2 = 2 * 0.5^2 / 2
    assert float((y[0, 2 * HOP :] ** 2).mean()) == pytest.approx(0.25, rel=0.02)


def test_zero_amplitude_is_exact_silence():
    y = harmonic_synth(
        const(2, 10, 440.0),
        const(2, 10, 0.0, 1),
        torch.rand(2, 10, 16),
        sample_rate=SR,
        hop_length=HOP,
    )
    assert torch.count_nonzero(y) == 0


def test_block_by_block_equals_one_shot():
    torch.manual_seed(1)
    f0 = torch.rand(3, 40) * 800 + 50
    amp, dist = torch.rand(3, 40, 1), torch.rand(3, 40, 30)
    for upsample in ("hann", "linear"):
        full = harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP, upsample=upsample)
        pieces, state = [], None
        for s, e in [(0, 1), (1, 5), (5, 6), (6, 23), (23, 40)]:
            y, state = harmonic_synth(
                f0[:, s:e],
                amp[:, s:e],
                dist[:, s:e],
                sample_rate=SR,
                hop_length=HOP,
                upsample=upsample,
                state=state,
                return_state=True,
            )
            pieces.append(y)
        torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=0)


def test_matches_materialized_reference():
    torch.manual_seed(2)
    f0 = torch.rand(2, 30, dtype=torch.float64) * 500 + 80
    amp, dist = (
        torch.rand(2, 30, 1, dtype=torch.float64),
        torch.rand(2, 30, 40, dtype=torch.float64),
    )
    fast = harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)
    ref = harmonic_synth_reference(f0, amp, dist, sample_rate=SR, hop_length=HOP)
    torch.testing.assert_close(fast, ref, atol=1e-9, rtol=0)


def test_minutes_of_audio_do_not_drift():
    minutes = 3
    frames = minutes * 60 * SR // 128
    y = harmonic_synth(
        const(1, frames, 1234.5),
        const(1, frames, 1.0, 1),
        const(1, frames, 1.0, 1),
        sample_rate=SR,
        hop_length=128,
    )[0]
    tail = np.arange(len(y) - 1000, len(y), dtype=np.float64) + 1
    ref = np.sin(2 * np.pi * 1234.5 * tail / SR)
    assert np.abs(y[-1000:].double().numpy() - ref).max() < 1e-3


def test_gradcheck_float64():
    f0 = (torch.rand(2, 4, dtype=torch.float64) * 300 + 100).requires_grad_()
    amp = torch.rand(2, 4, 1, dtype=torch.float64, requires_grad=True)
    dist = torch.rand(2, 4, 6, dtype=torch.float64, requires_grad=True)
    for upsample in ("hann", "linear"):
        assert torch.autograd.gradcheck(
            lambda f, a, d, u=upsample: harmonic_synth(
                f, a, d, sample_rate=1000, hop_length=4, upsample=u
            ),
            (f0, amp, dist),
        )


def test_chunked_kernel_matches_single_chunk(monkeypatch):
    import ddsp_morph.dsp.oscillators as osc

    torch.manual_seed(3)
    f0 = (torch.rand(2, 20) * 300 + 100).requires_grad_()
    amp, dist = torch.rand(2, 20, 1, requires_grad=True), torch.rand(2, 20, 10, requires_grad=True)
    y1 = harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)
    g1 = torch.autograd.grad(y1.square().sum(), (f0, amp, dist))
    monkeypatch.setattr(osc, "CHUNK_ELEMENTS", 2 * HOP * 10 * 3)  # 3 frames per chunk
    y2 = harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)
    g2 = torch.autograd.grad(y2.square().sum(), (f0, amp, dist))
    torch.testing.assert_close(y1, y2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "f0, amp, dist, message",
    [
        (
            torch.ones(2, 5, 1),
            torch.ones(2, 5, 1),
            torch.ones(2, 5, 3),
            "f0_hz: expected shape [batch, n_frames]",
        ),
        (
            torch.ones(2, 5),
            torch.ones(2, 5, 1),
            torch.ones(2, 5),
            "harmonic_distribution: expected shape",
        ),
        (
            torch.ones(2, 5),
            torch.ones(2, 4, 1),
            torch.ones(2, 5, 3),
            "must share [batch, n_frames]",
        ),
        (torch.zeros(2, 5), torch.ones(2, 5, 1), torch.ones(2, 5, 3), "f0_hz: must be > 0"),
    ],
)
def test_bad_inputs_name_the_argument(f0, amp, dist, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)


def test_phase_wraps_but_stays_continuous():
    # phase is held in [0, 2 pi); successive samples differ by 2 pi f0 / sr modulo 2 pi.
    from ddsp_morph.dsp.oscillators import accumulate_phase

    f = torch.full((1, 5000), 3000.0)
    phase, final = accumulate_phase(f, sample_rate=SR)
    # float32 rounding may turn a value just below 2 pi into 2 pi itself
    assert float(phase.min()) >= 0 and float(phase.max()) <= 2 * math.pi + 1e-6
    step = torch.remainder(phase[0, 1:] - phase[0, :-1], 2 * math.pi)
    torch.testing.assert_close(
        step, torch.full_like(step, 2 * math.pi * 3000 / SR), atol=1e-4, rtol=0
    )
    assert final.dtype == torch.float64


def assert_matches_float64_reference(f0, amp, dist):
    """The fast bank against the materialized reference, audio and gradients (float64 inputs
    that require grad); returns the fast render."""
    fast = harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)
    ref = harmonic_synth_reference(f0, amp, dist, sample_rate=SR, hop_length=HOP)
    torch.testing.assert_close(fast, ref, atol=1e-9, rtol=0)
    g_fast = torch.autograd.grad(fast.square().sum(), (f0, amp, dist), retain_graph=True)
    g_ref = torch.autograd.grad(ref.square().sum(), (f0, amp, dist))
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    return fast


def test_high_pitches_skip_silent_harmonics_without_changing_the_result(monkeypatch):
    import ddsp_morph.dsp.oscillators as osc

    monkeypatch.setattr(
        osc, "CHUNK_ELEMENTS", 2 * HOP * 40 * 4
    )  # several chunks, each trimmed on its own
    torch.manual_seed(4)
    f0 = (
        torch.cat([torch.full((2, 10), 150.0), torch.rand(2, 20) * 1500 + 1500], 1)
        .double()
        .requires_grad_()
    )
    amp = torch.rand(2, 30, 1, dtype=torch.float64, requires_grad=True)
    dist = torch.rand(2, 30, 40, dtype=torch.float64, requires_grad=True)
    assert_matches_float64_reference(f0, amp, dist)


def test_frames_are_grouped_by_their_own_register_not_the_batchs_lowest():
    from ddsp_morph.dsp.oscillators import GROUP_STEP, SMALL_ROWS, _frame_groups

    # clip 0 low (every one of 40 harmonics below Nyquist), clip 1 high (only the first few)
    n = SMALL_ROWS  # frames per clip: 2 * SMALL_ROWS rows, enough to be grouped
    f0 = torch.stack([torch.full((n, HOP), 20.0), torch.full((n, HOP), 1900.0)])
    groups = dict(_frame_groups(f0, 40, SR / 2.0))
    high = math.ceil(SR / 2.0 / 1900.0 / GROUP_STEP) * GROUP_STEP
    assert sorted(groups) == [high, 40]
    assert groups[40].tolist() == list(range(n))
    assert groups[high].tolist() == list(range(n, 2 * n))
    # a streaming block: one group of all rows, the lowest pitch's harmonics
    block = f0[:, :2]
    assert _frame_groups(block, 40, SR / 2.0) == [(40, None)]
    assert _frame_groups(block[1:], 40, SR / 2.0) == [(math.ceil(SR / 2.0 / 1900.0), None)]


def test_a_batch_of_registers_matches_the_reference_and_each_clip_alone(monkeypatch):
    import ddsp_morph.dsp.oscillators as osc

    monkeypatch.setattr(osc, "CHUNK_ELEMENTS", HOP * 40 * 3)  # several chunks per group
    torch.manual_seed(5)
    low = torch.rand(1, 12) * 30 + 60  # up to 40 harmonics below Nyquist
    high = torch.rand(1, 12) * 900 + 1200  # 2-3 of them
    glide = torch.linspace(80, 1900, 12).unsqueeze(0)  # crosses many group edges
    f0 = torch.cat([low, high, glide]).double().requires_grad_()
    amp = torch.rand(3, 12, 1, dtype=torch.float64, requires_grad=True)
    dist = torch.rand(3, 12, 40, dtype=torch.float64, requires_grad=True)
    fast = assert_matches_float64_reference(f0, amp, dist).detach()
    for i in range(3):
        alone = harmonic_synth(
            f0[i : i + 1], amp[i : i + 1], dist[i : i + 1], sample_rate=SR, hop_length=HOP
        )
        torch.testing.assert_close(fast[i : i + 1], alone, atol=1e-12, rtol=0)


def test_a_traced_bank_masks_by_the_pitch_it_is_given_not_the_one_it_was_traced_with():
    # traced on a low pitch (every harmonic below Nyquist), run on a high one: the harmonics
    # the high pitch puts above Nyquist must still be silenced, as in eager mode
    def synth(f0, amp, dist):
        return harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)

    amp, dist = const(1, 6, 0.5, 1), torch.rand(1, 6, 30)
    traced = torch.jit.trace(synth, (const(1, 6, 100.0), amp, dist), check_trace=False)
    # leaps of an octave each frame: inside each hop the pitch glides, and a harmonic crosses
    # Nyquist at a sample that the frames' own pitches do not show
    high = torch.tensor([[1000.0, 2000.0, 1000.0, 2000.0, 1000.0, 2000.0]])
    want = synth(high, amp, dist)
    torch.testing.assert_close(traced(high, amp, dist), want, atol=1e-5, rtol=0)
