"""The polyphonic engine: voices played together equal each voice's offline render, summed; a
silent voice costs nothing and keeps its state; a block allocates nothing when notes start,
stop or are stolen."""

from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from ddsp_morph.realtime.engine import render_offline
from ddsp_morph.realtime.fast import FastEngine
from ddsp_morph.realtime.voice_bank import TorchVoices, VoiceBank

from .test_fast_engine import HOP, _controls, _model


def _voice_controls(n: int, k: int):
    f0, loud = _controls(n)
    return f0 * 2 ** (k * 4 / 12), loud - 3 * k  # each voice a third higher, a little softer


@pytest.mark.parametrize(
    "synth, frames, weights",
    [
        ("harmonic_noise_reverb", 1, "float32"),
        ("harmonic_noise_reverb", 2, "int16"),
        ("harmonic_noise_reverb", 1, "int16:int16"),  # int16 activations too (int_dot)
        ("harmonic_noise", 1, "float32"),
        ("harmonic_noise_reverb", 1, "torch"),  # the torch reference, TorchVoices
    ],
)
def test_the_bank_equals_the_offline_render_of_every_voice_summed(
    tmp_path: Path, synth: str, frames: int, weights: str
):
    torch.manual_seed(0)
    weights, _, activations = weights.partition(":")
    # int16 activations: 48 columns, one 32-column integer chunk and a float tail
    model = _model(tmp_path, synth, "vae", hidden=48 if activations else 32)
    n, voices = 40, 5  # 5 voices: the four-at-a-time path and the one left over
    zs = [torch.randn(4) for _ in range(voices)]
    offline = torch.zeros(n * HOP)
    noises = []
    for k in range(voices):
        f0, loud = _voice_controls(n, k)
        offline += render_offline(model, f0, loud, zs[k], seed=10 + k)
        noises.append(torch.rand(n * HOP, generator=torch.Generator().manual_seed(10 + k)) * 2 - 1)
    if weights == "torch":
        bank = TorchVoices(model, 8, frames_per_block=frames)
    else:
        bank = VoiceBank(
            model, 8, frames_per_block=frames, weights=weights, activations=activations or "float32"
        )
        assert (bank._scratch[-1] > 0).any() == bool(activations)  # the integer path is taken
    slots = [6, 0, 3, 7, 2]  # any slots: voice k plays in slot slots[k]
    for k, slot in enumerate(slots):
        bank.set_z(slot, zs[k].numpy())
    out = []
    for i in range(0, n, frames):
        for k, slot in enumerate(slots):
            f0, loud = _voice_controls(n, k)
            bank.f0_hz[slot] = f0[i : i + frames].numpy()
            bank.loudness_db[slot] = loud[i : i + frames].numpy()
            bank.slots[k] = slot
        noise = np.stack([x[i * HOP : (i + frames) * HOP].numpy() for x in noises])
        out.append(bank.process(voices, noise).copy())
    played = torch.from_numpy(np.concatenate(out))
    assert offline.abs().max() > 1e-2
    tol = 2e-3 if weights == "int16" else 2e-4  # int16 activations: as int16 weights alone
    torch.testing.assert_close(played, offline, atol=tol, rtol=0)
    if weights == "torch":
        return
    # a voice alone equals the mono engine on the same controls
    bank.reset()
    mono = FastEngine(model, frames_per_block=frames, weights=weights)
    f0, loud = _voice_controls(n, 0)
    for i in range(0, n, frames):
        bank.slots[0] = 4
        bank.set_z(4, zs[0].numpy())
        bank.f0_hz[4], bank.loudness_db[4] = f0[i : i + frames], loud[i : i + frames]
        noise = noises[0][i * HOP : (i + frames) * HOP].numpy()
        ours = bank.process(1, noise[None]).copy()
        theirs = mono.process_numpy(
            f0[i : i + frames].numpy(), loud[i : i + frames].numpy(), zs[0].numpy(), noise
        )
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_a_silent_voice_costs_nothing_and_keeps_its_state(tmp_path: Path):
    model = _model(tmp_path, "harmonic_noise_reverb", "vae")
    bank = VoiceBank(model, 4)
    bank.set_z(1, np.ones(4, np.float32))
    bank.f0_hz[1], bank.loudness_db[1] = 330.0, -20.0
    bank.slots[0] = 1
    for _ in range(3):
        bank.process(1)
    hidden, phase = bank.hidden.copy(), bank.h_state.copy()
    assert np.abs(hidden[1]).max() > 0 and not hidden[[0, 2, 3]].any()
    bank.slots[0] = 2  # voice 1 now silent: not computed, its state kept
    bank.f0_hz[2], bank.loudness_db[2] = 220.0, -20.0
    bank.process(1)
    np.testing.assert_array_equal(bank.hidden[1], hidden[1])
    np.testing.assert_array_equal(bank.h_state[1], phase[1])
    assert np.abs(bank.hidden[2]).max() > 0
    out = bank.process(0)  # nothing sounding: only the reverb's tail
    assert np.isfinite(out).all()
    bank.reset_voice(1)
    assert not bank.hidden[1].any() and not bank.h_state[1].any()


def _msg(kind: str, **kw):
    return mido.Message(kind, **kw)


def test_a_note_that_starts_stops_or_is_stolen_allocates_nothing(tiny_run: Path):
    """Blocks of the compiled polyphonic synth, with a note-on, a note-off and a steal handled
    before them, against a block where nothing happens. numba's allocation counter moves by
    the same count in each: one record per array handed to a kernel (numba wraps each in a
    MemInfo; the kernels allocate nothing themselves, so a steady block's count is exactly the
    arrays passed). And tracemalloc's peak over the block is no higher than over a block where
    nothing happens (what remains is the kernels' dispatch: argument records, a few KB that
    Python frees at once, the same in every block), so nothing of a voice's size (its GRU
    state, a block of samples) is allocated for a note."""
    import tracemalloc

    from numba.core.runtime import _nrt_python, rtsys

    from ddsp_morph.realtime.performer import PerformerSettings
    from ddsp_morph.realtime.poly import PolyPerformer
    from ddsp_morph.runs import load_run

    p = PolyPerformer(
        load_run(tiny_run, checkpoint="last"),
        PerformerSettings(device_rate=16000, voices=2),
        n_voices=2,
    )
    block_bytes = 4 * p.block_size
    _nrt_python.memsys_enable_stats()  # numba's allocation counter

    def played(messages) -> tuple[int, int]:
        for m in messages:
            p.controller.handle(m, p.t)
        before = rtsys.get_allocation_stats().alloc
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        p.next_block()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return rtsys.get_allocation_stats().alloc - before, peak

    for warm in ([_msg("note_on", note=60, velocity=100)], [], [_msg("note_off", note=60)]):
        played(warm)  # every code path once (caches: timbres, the limiter's compile)
    for _ in range(40):
        played([])
    steady, _ = played([])
    assert 0 < steady < 100
    events = {
        "note on": [_msg("note_on", note=62, velocity=90)],
        "second note on": [_msg("note_on", note=65, velocity=90)],
        "steal": [_msg("note_on", note=69, velocity=90)],
        "note off": [_msg("note_off", note=69)],
    }
    for name, messages in events.items():
        allocs, peak = played(messages)
        _, after = played([])  # the next block: the same voices sounding, no event
        assert allocs == steady, (name, allocs, steady)
        assert peak <= after + min(256, block_bytes // 2), (name, peak, after)
    assert p.active_counts[-6:] == [2, 2, 2, 2, 2, 2]  # steal: the old note played out, fading


def test_the_limiter_passes_a_quiet_sum_holds_a_loud_one_at_the_knee_and_recovers():
    from ddsp_morph.realtime.poly import LIMIT_KNEE, limit_into, release_coefficient

    sr = 16000
    t = np.arange(sr) / sr
    quiet = (0.6 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    loud = (2.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out, gain, rel = np.empty_like(quiet), np.ones(1), release_coefficient(sr)
    limit_into(quiet, out, gain, rel)
    np.testing.assert_array_equal(out, quiet)  # under the knee: untouched
    limit_into(loud, out, gain, rel)
    assert np.abs(out).max() <= LIMIT_KNEE + 1e-6  # held at the knee, never near 1
    assert abs(np.abs(out[sr // 2 :]).max() - LIMIT_KNEE) < 0.01  # not pumped below it
    assert 0.3 < gain[0] < 0.4  # about 0.7 / 2
    limit_into(quiet, out, gain, rel)  # the gain recovers (80 ms): quiet again passes as is
    np.testing.assert_allclose(out[int(0.8 * sr) :], quiet[int(0.8 * sr) :], atol=1e-4)
    wild = np.full(64, 50.0, np.float32)
    limit_into(wild, out[:64], np.ones(1), rel)
    assert np.abs(out[:64]).max() <= LIMIT_KNEE + 1e-6
