"""One synth shared by every open page: the messages a page sends, checked and applied to the
live performer, the notes each page holds, and what the pages are shown of the output.

A message that is malformed or out of range is ignored and counted; nothing a page sends can
stop the audio. A page that goes away releases the notes it held."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import mido
import numpy as np

from ddsp_morph.realtime.performer import Performer
from ddsp_morph.realtime.play.timbre_map import TimbreMap

SPECTRUM_BINS = 128  # bands of the spectrogram a page draws, 0 .. 8 kHz
SPECTRUM_FFT = 1024


@dataclass
class Event:
    """One applied message, at the output sample where it took effect (for a take's log)."""

    sample: int
    kind: str
    data: dict = field(default_factory=dict)


class PlaySession:
    def __init__(self, performer: Performer, timbre_map: TimbreMap | None, run_name: str):
        self.performer = performer
        self.map = timbre_map
        self.run_name = run_name
        self.lock = threading.Lock()
        self.malformed = 0
        self.held: dict[str, set[int]] = {}  # page id -> notes it holds
        self.sustain = False
        self.mode = "pad" if timbre_map is not None else "none"
        self.pad = (0.0, 0.0)
        self.samples_out = 0
        self.events: list[Event] = []
        self.tail = np.zeros(SPECTRUM_FFT, np.float32)  # the latest output samples
        self.level_db = -120.0
        if timbre_map is not None:
            # start on the first instrument
            first = timbre_map.describe()["instruments"][0]
            self._set_pad(first["x"], first["y"])

    # --- messages ------------------------------------------------------------------------
    def handle(self, page: str, msg) -> bool:
        """Apply one message of a page; False (and counted) when it is malformed or out of
        range. Never raises."""
        try:
            ok = self._apply(page, msg)
        except Exception:  # noqa: BLE001 - nothing a page sends may stop the audio
            ok = False
        if not ok:
            self.malformed += 1
        return ok

    def _apply(self, page: str, msg) -> bool:
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return False
        kind = msg["type"]
        with self.lock:
            if kind == "note_on":
                note, velocity = _int(msg.get("note"), 0, 127), _int(msg.get("velocity"), 1, 127)
                if note is None or velocity is None:
                    return False
                self.held.setdefault(page, set()).add(note)
                self._midi(mido.Message("note_on", note=note, velocity=velocity))
            elif kind == "note_off":
                note = _int(msg.get("note"), 0, 127)
                if note is None:
                    return False
                self.held.setdefault(page, set()).discard(note)
                self._midi(mido.Message("note_off", note=note))
            elif kind == "sustain":
                if not isinstance(msg.get("on"), bool):
                    return False
                self.sustain = msg["on"]
                self._midi(mido.Message("control_change", control=64, value=127 * self.sustain))
            elif kind == "pad":
                x, y = _float(msg.get("x"), -1, 1), _float(msg.get("y"), -1, 1)
                if x is None or y is None or self.map is None:
                    return False
                self._set_pad(x, y)
            elif kind == "path":
                names = self.map.names if self.map is not None else []
                a, b = msg.get("from"), msg.get("to")
                morph = _float(msg.get("morph"), 0, 1)
                if a not in names or b not in names or morph is None:
                    return False
                if (self.performer.latent.source, self.performer.latent.target) != (a, b):
                    self.performer.set_path(a, b)
                self.mode = "path"
                self.performer.z_override = None
                self.performer.controller.morph = morph
                self._log("path", {"from": a, "to": b, "morph": morph})
            else:
                return False
        return True

    def _midi(self, message) -> None:
        self.performer.controller.handle(message, self.performer.t)
        self._log(message.type, message.dict())

    def handle_midi(self, message) -> None:
        """A message from a MIDI keyboard plugged in beside the page."""
        with self.lock:
            self._midi(message)

    def _set_pad(self, x: float, y: float) -> None:
        self.mode, self.pad = "pad", (x, y)
        self.performer.z_override = self.map.z_at(x, y)
        self._log("pad", {"x": x, "y": y})

    def _log(self, kind: str, data: dict) -> None:
        self.events.append(Event(self.samples_out, kind, data))

    def release(self, page: str) -> None:
        """A page went away: the notes it held end, the pedal notwithstanding."""
        with self.lock:
            notes = self.held.pop(page, set())
            pedal = self.performer.controller.pedal
            self.performer.controller.pedal = False
            for note in sorted(notes):
                self._midi(mido.Message("note_off", note=note))
            self.performer.controller.pedal = pedal

    # --- audio ---------------------------------------------------------------------------
    def next_block(self) -> np.ndarray:
        with self.lock:
            audio = self.performer.next_block()
            self.samples_out += len(audio)
        n = min(len(audio), SPECTRUM_FFT)
        if n:
            self.tail = np.roll(self.tail, -n)
            self.tail[-n:] = audio[-n:]
        if len(audio):
            rms = float(np.sqrt(np.mean(np.square(audio)) + 1e-12))
            self.level_db = max(20 * np.log10(rms), self.level_db - 3.0)  # falls 3 dB a block
        return audio

    def frame(self, rate: int) -> dict:
        """What a page draws now: one spectrogram column (dB, 0..8 kHz), the level, f0 and
        loudness, the timbre position and the count of ignored messages."""
        column = spectrum_column(self.tail.copy(), rate)
        p = self.performer
        return {
            "type": "frame",
            "spectrum": column,
            "level_db": round(float(self.level_db), 1),
            "f0_hz": round(p.last_f0, 1) if p.last_gate else 0.0,
            "loudness_db": round(p.last_loudness, 1),
            "mode": self.mode,
            "pad": list(self.pad),
            "morph": round(float(p.controller.morph), 3),
            "malformed": self.malformed,
            "seconds": round(self.samples_out / rate, 2),
        }


def spectrum_column(tail: np.ndarray, rate: int) -> list[int]:
    """SPECTRUM_BINS bands of the latest output, 0..8 kHz, in dB (-100..0), as integers."""
    if len(tail) < SPECTRUM_FFT:
        tail = np.pad(tail, (SPECTRUM_FFT - len(tail), 0))
    window = np.hanning(SPECTRUM_FFT).astype(np.float32)
    mag = np.abs(np.fft.rfft(tail[-SPECTRUM_FFT:] * window)) / (window.sum() / 2)
    freqs = np.fft.rfftfreq(SPECTRUM_FFT, 1.0 / rate)
    edges = np.linspace(0.0, min(8000.0, rate / 2), SPECTRUM_BINS + 1)
    idx = np.clip(np.searchsorted(freqs, edges), 0, len(freqs) - 1)
    bands = [mag[a : max(b, a + 1)].max() for a, b in zip(idx[:-1], idx[1:], strict=True)]
    db = 20 * np.log10(np.asarray(bands) + 1e-6)
    return [int(v) for v in np.clip(np.round(db), -100, 0)]


def _int(value, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not float(value).is_integer() or not low <= value <= high:
        return None
    return int(value)


def _float(value, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not np.isfinite(value) or not low <= value <= high:
        return None
    return float(value)


class Pacer:
    """Renders blocks at the pace of real time when there is no sound card: the headless
    twin of the audio callback."""

    def __init__(self, session_of, rate: int, sink) -> None:
        self.session_of, self.rate, self.sink = session_of, rate, sink
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        start = time.perf_counter()
        produced = 0
        while not self.stop.is_set():
            ahead = produced / self.rate - (time.perf_counter() - start)
            if ahead > 0.02:
                time.sleep(min(ahead - 0.01, 0.05))
                continue
            audio = self.session_of().next_block()
            produced += len(audio)
            self.sink(audio)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
