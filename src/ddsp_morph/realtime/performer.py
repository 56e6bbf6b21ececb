"""The performer: MIDI/OSC controller -> timbre position -> streaming engine -> resampler.

One code path for the live synth and the headless renderer: events are applied at the start
of the block after they arrive (so a message waits at most one block), every frame of the
block takes its controls from the MidiController, and the 16 kHz model output is resampled
to the device rate in the stream (a polyphase FIR for 48 kHz, soxr otherwise)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ddsp_morph.config import conf_file, group_defaults
from ddsp_morph.control.midi import MidiController, MidiSettings, midi_events
from ddsp_morph.dsp.resample import PolyphaseUpsampler
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.latent.geometry import chain_points, speed_between
from ddsp_morph.realtime.engine import StreamingEngine
from ddsp_morph.realtime.fast import FastEngine
from ddsp_morph.sources import corpus_midi_settings

log = logging.getLogger(__name__)


@dataclass
class PerformerSettings:
    frames_per_block: int = 1
    device_rate: int = 48000
    source: str | None = None  # the instrument at morph = 0 (None: the first one)
    target: str | None = None  # the instrument at morph = 1 (None: the second one)
    path: str = group_defaults("morph").path  # conf/morph/default.yaml, as every morph tool
    through: tuple[
        str, ...
    ] = ()  # a path through these instruments in order (overrides source/target)
    path_steps: int = 65  # the path is precomputed at this resolution
    even: bool = group_defaults(
        "morph"
    ).even  # CC1 moves the timbre evenly (the run's stored speeds), not z
    pc_scale: float = 2.0  # a PC CC at its extreme moves z by this many standard deviations
    engine: str = "fast"  # "fast": the compiled engine (realtime.fast); "torch": StreamingEngine
    weights: str = "int16"  # the fast engine's decoder weights: "float32", "int16" or "int8"
    input_tables: int = 2048  # the fast engine's tabulated f0/loudness branches (0: off)
    activations: str = conf_file("realtime").activations  # the voice bank's (polyphonic)
    voices: int = conf_file("realtime").voices  # > 1: polyphonic (realtime.poly); 1: mono
    mpe: bool = False  # MPE lower zone: per-note bend, CC74 timbre and pressure (polyphonic)
    split: int | None = None  # notes below it play `source`, from it up `target` (polyphonic)
    layer: bool = False  # every note plays `source` and `target` together, on two voices


class LatentMap:
    """(morph, pc1, pc2) -> z: along the centroid path, plus the first two principal axes."""

    def __init__(self, latent: dict, s: PerformerSettings) -> None:
        names = sorted(latent["centroids"])
        source = s.source or names[0]
        target = s.target or (names[1] if len(names) > 1 else names[0])
        stops = list(s.through) if s.through else [source, target]
        for name in stops:
            if name not in latent["centroids"]:
                raise DDSPMorphError(f"instrument {name!r}: no centroid; this run knows {names}")
        self.source, self.target = stops[0], stops[-1]
        points = [np.asarray(latent["centroids"][n], np.float32) for n in stops]
        # CC1 travels the whole chain; each segment gets the same share of the wheel, within
        # which the timbre moves evenly where the run stores its speeds
        per_segment = max(2, (s.path_steps - 1) // (len(points) - 1) + 1)
        speeds = [
            speed_between(latent, a, b, s.path) if s.even else None
            for a, b in zip(stops[:-1], stops[1:], strict=True)
        ]
        if s.even and any(sp is None for sp in speeds):
            log.warning(
                "no timbre-speed table stored for the path %s (a resume checkpoint, or a run "
                "from before they were stored): CC1 moves evenly in z there",
                " > ".join(stops),
            )
        self.path = torch.from_numpy(
            chain_points(points, per_segment, s.path, speeds).astype(np.float32)
        )
        comps = np.asarray(latent["pca_components"], np.float32)
        std = np.asarray(latent["pca_std"], np.float32)
        axes = np.zeros((2, len(points[0])), np.float32)
        axes[: len(comps)] = comps * (std[:, None] * s.pc_scale)
        self.axes = torch.from_numpy(axes)

    def z(self, morph: float, pc: list[float]) -> torch.Tensor:
        pos = float(np.clip(morph, 0.0, 1.0)) * (len(self.path) - 1)
        i = min(int(pos), len(self.path) - 2)
        frac = pos - i
        base = (1 - frac) * self.path[i] + frac * self.path[i + 1]
        return base + pc[0] * self.axes[0] + pc[1] * self.axes[1]


class Performer:
    def __init__(
        self, run, settings: PerformerSettings | None = None, midi: MidiSettings | None = None
    ) -> None:
        import soxr

        self.s = settings or PerformerSettings()
        self.run = run
        cfg = run.cfg
        self.sample_rate, self.hop = int(cfg.data.sample_rate), int(cfg.data.hop_length)
        self.controller = MidiController(midi or corpus_midi_settings(Path(cfg.data.corpus_dir)))
        latent = run.extra.get("latent")
        self.latent = (
            LatentMap(latent, self.s) if run.model.encoder is not None and latent else None
        )
        if run.model.encoder is not None and self.latent is None:
            raise DDSPMorphError(
                f"{run.checkpoint_path}: no latent centroids stored; retrain or use another checkpoint"
            )
        source_id = (
            run.instruments.index(self.latent.source) if self.latent and run.instruments else 0
        )
        self.source_id = source_id
        self.engine = self.make_engine()
        self.block_size = self.engine.block_size
        # An integer ratio (16 -> 48 kHz) gets a polyphase FIR (0.48 ms, images 60 dB down); any
        # other rate soxr's quick streaming mode (no delay beyond the block; its HQ holds 32 ms).
        self.upsampler: PolyphaseUpsampler | None = None
        self.resampler = None
        if self.s.device_rate != self.sample_rate:
            if self.s.device_rate % self.sample_rate == 0:
                self.upsampler = PolyphaseUpsampler(self.s.device_rate // self.sample_rate)
            else:
                self.resampler = soxr.ResampleStream(
                    self.sample_rate, self.s.device_rate, 1, dtype="float32", quality="QQ"
                )
        self.t = 0.0  # model time of the next block, seconds
        self.compute_seconds: list[float] = []
        # a timbre given directly (the play page's XY pad), instead of the morph path
        self.z_override: np.ndarray | None = None
        self.last_f0, self.last_loudness, self.last_gate = 0.0, -120.0, 0.0
        self.f0_range = trained_f0_range(Path(cfg.data.corpus_dir))
        self.out_of_range_warned = False

    def make_engine(self):
        """One streaming engine of the run (its own GRU state, phases and filter tails)."""
        run, s = self.run, self.s
        if s.engine == "fast":
            return FastEngine(
                run.model,
                frames_per_block=s.frames_per_block,
                instrument_id=self.source_id,
                weights=s.weights,
                input_tables=s.input_tables,
            )
        if s.engine == "torch":
            return StreamingEngine(
                run.model, frames_per_block=s.frames_per_block, instrument_id=self.source_id
            )
        raise DDSPMorphError(f"engine: expected 'fast' or 'torch', got {s.engine!r}")

    def synthesize(self, engine, f0: np.ndarray, loud: np.ndarray, z) -> np.ndarray:
        """One block of ``engine`` at the model rate (a copy)."""
        if isinstance(engine, FastEngine):
            return engine.process_numpy(f0, loud, None if z is None else z.numpy()).copy()
        return engine.process(torch.from_numpy(f0), torch.from_numpy(loud), z).numpy()

    def to_device_rate(self, audio: np.ndarray) -> np.ndarray:
        if self.upsampler is not None:
            return self.upsampler.process(audio)
        if self.resampler is not None:
            return self.resampler.resample_chunk(audio)
        return audio

    def next_block(
        self, f0_hz: np.ndarray | None = None, loudness_db: np.ndarray | None = None
    ) -> np.ndarray:
        """Synthesize the next block (at the device rate; the resampler's length varies).
        f0 and loudness come from the MIDI controller, or are given (audio in: one value per
        frame of the block); the timbre always comes from the controller (CC1, OSC, XY)."""
        start = time.perf_counter()
        n = self.s.frames_per_block
        if f0_hz is not None and loudness_db is not None:
            f0 = np.asarray(f0_hz, np.float32)
            loud = np.asarray(loudness_db, np.float32)
            if len(f0) != n or len(loud) != n:
                raise ValueError(
                    f"expected {n} frames of f0 and loudness, got {len(f0)}, {len(loud)}"
                )
        else:
            f0 = np.empty(n, np.float32)
            loud = np.empty(n, np.float32)
            for i in range(n):
                f, ld, gate = self.controller.frame(self.t + i * self.hop / self.sample_rate)
                f0[i], loud[i] = f, ld
                self.last_gate = gate
                if gate and not self.out_of_range_warned:
                    self._check_range(f)
        # MIDI and OSC are handled between blocks: one timbre per block
        self.last_f0, self.last_loudness = float(f0[-1]), float(loud[-1])
        if self.latent is None:
            z = None
        elif self.z_override is not None:
            z = torch.from_numpy(np.asarray(self.z_override, np.float32))
        else:
            z = self.latent.z(self.controller.morph, self.controller.pc)
        audio = self.synthesize(self.engine, f0, loud, z)
        self.t += self.block_size / self.sample_rate
        audio = self.to_device_rate(audio)
        self.compute_seconds.append(time.perf_counter() - start)
        return audio

    def set_path(self, source: str, target: str) -> None:
        """Morph between two other instruments from now on (CC1 / the page's slider)."""
        latent = self.run.extra.get("latent")
        if latent is None:
            raise DDSPMorphError("this run has no latent: nothing to morph")
        self.s = replace(self.s, source=source, target=target, through=())
        self.latent = LatentMap(latent, self.s)

    def _check_range(self, f0_hz: float) -> None:
        """Warn once when a played note lies over a semitone outside the f0 range the model
        was trained on (it renders, but what comes out there is a guess, often silence)."""
        if self.f0_range is None:
            return
        lo, hi = self.f0_range
        if f0_hz < lo * 2 ** (-1 / 12) or f0_hz > hi * 2 ** (1 / 12):
            self.out_of_range_warned = True
            log.warning(
                "a note at %.0f Hz is outside the f0 range this model was trained on "
                "(%.0f-%.0f Hz, MIDI %d-%d); it may sound wrong or silent",
                f0_hz, lo, hi, round(hz_to_midi_number(lo)), round(hz_to_midi_number(hi)),
            )  # fmt: skip

    def flush(self) -> np.ndarray:
        if self.resampler is None:
            return np.zeros(0, np.float32)
        return self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def hz_to_midi_number(f0_hz: float) -> float:
    return 69.0 + 12.0 * float(np.log2(f0_hz / 440.0))


def trained_f0_range(corpus_dir: Path) -> tuple[float, float] | None:
    """The f0 range of the corpus a run was trained on (its stats.json); None if unknown."""
    try:
        stats = json.loads((corpus_dir / "stats.json").read_text())
        if "f0_hz_voiced_p005" in stats:
            return float(stats["f0_hz_voiced_p005"]), float(stats["f0_hz_voiced_p995"])
        return float(stats["f0_hz_min"]), float(stats["f0_hz_max"])
    except (OSError, ValueError, KeyError):
        return None


def render_midi_file(
    run,
    midi_path: str | Path,
    settings: PerformerSettings,
    *,
    tail_s: float = 0.5,
    sink: Callable[[np.ndarray], None] | None = None,
    watch: Callable[[Performer], None] | None = None,
) -> tuple[np.ndarray | None, dict]:
    """The headless path: the MIDI file's events fed to the performer at the block where they
    would arrive live. Returns (audio at the device rate, timing statistics); with ``sink``,
    each block goes to it as it is made and no audio is kept (None), so a long file renders in
    flat memory; ``watch`` sees the performer after every block (e.g. each voice's samples)."""
    from ddsp_morph.realtime.poly import performer_for

    events = midi_events(midi_path)
    p = performer_for(run, settings)
    block_s = p.block_size / p.sample_rate
    n_blocks = int(np.ceil((events[-1][0] + tail_s) / block_s))
    out: list[np.ndarray] = []
    put = out.append if sink is None else sink
    k = 0
    for _ in range(n_blocks):
        while k < len(events) and events[k][0] <= p.t:  # arrived before this block starts
            p.controller.handle(events[k][1], events[k][0])
            k += 1
        put(p.next_block())
        if watch is not None:
            watch(p)
    put(p.flush())
    audio = np.concatenate(out).astype(np.float32) if sink is None else None
    c = np.asarray(p.compute_seconds)
    stats = {
        "blocks": int(len(c)),
        "block_ms": 1000 * block_s,
        "compute_ms_median": float(np.median(c) * 1000),
        "compute_ms_p99": float(np.percentile(c, 99) * 1000),
        "real_time_factor": float(c.sum() / (len(c) * block_s)),
        "source": p.latent.source if p.latent else None,
        "target": p.latent.target if p.latent else None,
    }
    return audio, stats
