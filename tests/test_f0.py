"""f0 features: the Viterbi path does not stick, and the harmonic check puts low reeds and
strings back in their octave (rendered notes whose true f0 the test knows)."""

from dataclasses import replace

import numpy as np
import pretty_midi
import pytest
import torch

from ddsp_morph.data.features import FeatureSettings, extract_f0, to_frame_rate, viterbi_bins
from ddsp_morph.data.phrases import CONTROL_RATE, Note, Phrase
from ddsp_morph.data.render import PhraseRenderer
from ddsp_morph.dsp.pitch import harmonic_divisor

SR, HOP = 16000, 128
TIMGM = pretty_midi.__file__.replace("__init__.py", "TimGM6mb.sf2")


def harmonic_tone(f0: float, seconds: float = 1.0, n_partials: int = 60):
    """A full harmonic series (amplitudes 0.9^k), like a reed or a bowed string."""
    t = np.arange(int(seconds * SR)) / SR
    ks = [k for k in range(1, n_partials + 1) if k * f0 < SR / 2]
    x = sum(0.9**k * np.sin(2 * np.pi * k * f0 * t) for k in ks)
    return torch.from_numpy((0.3 * x / np.abs(x).max()).astype(np.float32))


@pytest.mark.parametrize("f0, factor", [(55.0, 2), (65.4, 3), (49.0, 6), (110.0, 2)])
def test_harmonic_divisor_finds_the_pitch_the_partials_support(f0: float, factor: int):
    x = harmonic_tone(f0)
    n = len(x) // HOP
    kw = dict(sample_rate=SR, hop_length=HOP, fmin=40.0)
    wrong = harmonic_divisor(x, torch.full((n,), f0 * factor), **kw)
    right = harmonic_divisor(x, torch.full((n,), f0), **kw)
    assert (wrong[10:-10] == factor).all()
    assert (right == 1).all()  # a right estimate is left alone


def test_harmonic_divisor_never_goes_below_fmin():
    x = harmonic_tone(110.0)
    n = len(x) // HOP
    m = harmonic_divisor(x, torch.full((n,), 220.0), sample_rate=SR, hop_length=HOP, fmin=150.0)
    assert (m == 1).all()


def test_viterbi_leaves_a_silent_start_for_the_note():
    # 40 frames whose activations favour bin 350 weakly (silence), then 200 frames of bin 90:
    # the path must move to the note (torchcrepe's Viterbi held the first bin for the phrase).
    probs = torch.full((1, 360, 240), 0.01)
    probs[0, 350, :40] = 0.05
    probs[0, 88:93, 40:] = torch.tensor([0.2, 0.6, 0.9, 0.6, 0.2])[:, None]
    bins = viterbi_bins(probs)[0]
    assert (bins[45:] == 90).all()


def _render(program: int, pitches: list[int]) -> tuple[np.ndarray, list[slice]]:
    seconds = len(pitches) + 0.5
    n = int(seconds * CONTROL_RATE)
    phrase = Phrase(
        seconds=seconds,
        notes=[Note(i + 0.1, i + 0.9, p, 90) for i, p in enumerate(pitches)],
        bend_semitones=np.zeros(n),
        expression=np.full(n, 100.0),
    )
    out = PhraseRenderer(TIMGM, program, sample_rate=SR, render_rate=48000).render(
        phrase, hop_length=HOP
    )
    steady = [
        slice(int((i + 0.25) * SR / HOP), int((i + 0.85) * SR / HOP)) for i in range(len(pitches))
    ]
    return out.audio, steady


@pytest.mark.parametrize(
    "program, pitches",
    [(70, [34, 36, 38, 46]), (43, [44])],  # bassoon (6x and 3x errors), contrabass (octave up)
    ids=["bassoon", "contrabass"],
)
def test_low_instruments_get_their_octave(program: int, pitches: list[int]):
    audio, steady = _render(program, pitches)
    s = FeatureSettings()
    checked, _ = extract_f0(audio, s)
    unchecked, _ = extract_f0(audio, replace(s, f0_octave_check=False))
    err_checked, err_unchecked = [], []
    for p, sl in zip(pitches, steady, strict=True):
        true = 440.0 * 2 ** ((p - 69) / 12)
        err_checked.append(np.median(1200 * np.log2(checked[sl] / true)))
        err_unchecked.append(np.median(1200 * np.log2(unchecked[sl] / true)))
    assert max(abs(e) for e in err_checked) < 50, err_checked
    # the estimator alone reports a harmonic on every one of these notes
    assert min(err_unchecked) > 1100, err_unchecked


def test_to_frame_rate_interpolates_between_analysis_frames_and_holds_the_ends():
    track = torch.tensor([0.0, 2.0, 4.0, 10.0])  # frames at 0, 256, 512, 768 samples
    out = to_frame_rate(track, hop=128, analysis_hop=256, n_frames=9)
    assert torch.allclose(out, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 7.0, 10.0, 10.0, 10.0]))
    same = to_frame_rate(track, hop=128, analysis_hop=128, n_frames=3)
    assert torch.equal(same, track[:3])


def test_a_coarser_crepe_hop_keeps_a_glide_and_a_vibrato_in_cents():
    # 2 s: a glide from 220 to 330 Hz, then 5.5 Hz vibrato of +-40 cents around 330 Hz
    n = 2 * SR
    t = np.arange(n) / SR
    cents = np.where(t < 1.0, 1200 * np.log2(1.5) * t, 1200 * np.log2(1.5))
    cents = cents + np.where(t >= 1.0, 40 * np.sin(2 * np.pi * 5.5 * (t - 1.0)), 0.0)
    f = 220.0 * 2 ** (cents / 1200)
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(0.8**k * np.sin(k * phase) for k in range(1, 12))
    audio = (0.3 * x / np.abs(x).max()).astype(np.float32)
    fine, p_fine = extract_f0(audio, FeatureSettings(f0_hop_length=None))
    coarse, p_coarse = extract_f0(audio, FeatureSettings(f0_hop_length=256))
    assert coarse.shape == fine.shape == (n // HOP,)
    assert p_coarse.shape == p_fine.shape
    true = f[::HOP][: n // HOP]
    inner = slice(10, -10)
    err_fine = np.abs(1200 * np.log2(fine[inner] / true[inner]))
    err_coarse = np.abs(1200 * np.log2(coarse[inner] / true[inner]))
    assert np.median(err_coarse) < 10, np.median(err_coarse)
    assert np.median(err_coarse) < np.median(err_fine) + 3  # within 3 cents of every frame
    every_frame = FeatureSettings(f0_hop_length=None).key()
    assert FeatureSettings(f0_hop_length=256).key() != every_frame
    assert FeatureSettings(f0_hop_length=128).key() == every_frame


def test_a_bad_crepe_hop_is_refused():
    with pytest.raises(ValueError, match="f0_hop_length"):
        extract_f0(np.zeros(SR, np.float32), FeatureSettings(f0_hop_length=0))
