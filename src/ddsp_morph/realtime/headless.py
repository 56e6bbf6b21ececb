"""Headless renders: a MIDI file or a recording through the same performer, to a wav and a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddsp_morph.realtime.audio_in import AudioInSettings, render_audio_file
from ddsp_morph.realtime.performer import PerformerSettings, render_midi_file
from ddsp_morph.realtime.recording import SpectrogramSummary, StreamingWav


def write_render(
    path: Path,
    audio: np.ndarray | None,
    rate: int,
    stats: dict,
    *,
    summary: SpectrogramSummary | None = None,
    title: str | None = None,
) -> None:
    """The wav (unless ``audio`` is None: already streamed), its stats JSON and its spectrogram
    PNG (from ``summary`` when given, of bounded size whatever the length)."""
    from ddsp_morph.data.io import save_json, save_wav
    from ddsp_morph.plots import spectrogram_png

    if audio is not None:
        save_wav(path, audio, rate)
        summary = SpectrogramSummary()
        summary.push(audio)
    save_json(path.with_suffix(".json"), stats)
    spectrogram_png(
        path.with_suffix(".png"),
        summary.image(),
        duration=summary.n_samples / rate,
        top_khz=rate / 2000,
        title=f"{path.name}: "
        + (title or f"{stats.get('source')} → {stats.get('target')} (morph CC)"),
    )


def render_midi_to_wav(run, midi_path: Path, out: Path, s: PerformerSettings) -> dict:
    """A MIDI file through the performer, streamed into ``out`` block by block (a partial
    file is removed), with a spectrogram PNG beside it. Returns the render's statistics."""
    wav = StreamingWav(out, s.device_rate)
    try:
        _, stats = render_midi_file(run, midi_path, s, sink=wav.write)
    except BaseException:
        wav.abort()
        raise
    wav.close()
    write_render(out, None, s.device_rate, stats, summary=wav.summary)
    return stats


def render_audio_to_wav(
    run,
    audio_path: Path,
    out: Path,
    s: PerformerSettings,
    audio_in: AudioInSettings,
    *,
    sweep: bool,
    morph: float | None,
    midi_path: Path | None,
) -> dict:
    """A recording played through the model (the live audio-in path, headless) into ``out``
    and a PNG beside it. Returns the render's statistics."""
    audio, stats = render_audio_file(
        run, audio_path, s, audio_in, sweep=sweep, morph=morph, midi_path=midi_path
    )
    write_render(out, audio, s.device_rate, stats)
    return stats
