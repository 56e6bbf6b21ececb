"""Writing a long render without holding it: the wav is streamed to disk block by block, and
its spectrogram PNG is drawn from a summary of bounded size, so a render's peak memory does not
grow with its length."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

MAX_COLUMNS = 2048  # the summary's time columns; frames are max-pooled into them


class SpectrogramSummary:
    """A log-magnitude spectrogram (dB, Hann window) of a stream, max-pooled in time into at
    most ``max_columns`` columns: when full, neighbouring columns merge and every later column
    pools twice as many frames. Memory: ``max_columns x (n_fft / 2 + 1)`` floats."""

    def __init__(self, *, n_fft: int = 2048, hop: int = 512, max_columns: int = MAX_COLUMNS):
        self.n_fft, self.hop, self.max_columns = n_fft, hop, max_columns
        self.window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
        self.pending = np.zeros(n_fft // 2, np.float32)  # centred frames: half a window of zeros
        self.columns: list[np.ndarray] = []
        self.pool, self.in_column = 1, 0
        self.n_samples = 0

    def push(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32).reshape(-1)
        step = 64 * self.hop  # at most 64 frames at a time: the work arrays stay small
        for i in range(0, len(block), step):
            self._push(block[i : i + step])

    def _push(self, block: np.ndarray) -> None:
        self.n_samples += len(block)
        self.pending = np.concatenate([self.pending, block])
        n = (len(self.pending) - self.n_fft) // self.hop + 1
        if n <= 0:
            return
        idx = np.arange(n)[:, None] * self.hop + np.arange(self.n_fft)[None]
        frames = np.abs(np.fft.rfft(self.pending[idx] * self.window, axis=1))
        for frame in 20 * np.log10(np.maximum(frames, 1e-5)).astype(np.float32):
            self._add(frame)
        self.pending = self.pending[n * self.hop :]

    def _add(self, frame: np.ndarray) -> None:
        if self.in_column and self.columns:
            np.maximum(self.columns[-1], frame, out=self.columns[-1])
        else:
            self.columns.append(frame.copy())
        self.in_column = (self.in_column + 1) % self.pool
        if len(self.columns) > self.max_columns and self.in_column == 0:
            pairs = [
                np.maximum(a, b)
                for a, b in zip(self.columns[::2], self.columns[1::2], strict=False)
            ]
            if len(self.columns) % 2:
                pairs.append(self.columns[-1])
            self.columns, self.pool = pairs, self.pool * 2

    def image(self) -> np.ndarray:
        """[n_bins, n_columns] in dB (empty before the first frame)."""
        self.push(np.zeros(self.n_fft // 2, np.float32))  # the last centred frames
        self.n_samples -= self.n_fft // 2
        if not self.columns:
            return np.zeros((self.n_fft // 2 + 1, 0), np.float32)
        return np.stack(self.columns, axis=1)


class StreamingWav:
    """A mono float wav written block by block into a temporary file beside ``path`` and moved
    onto it by ``close()``: a reader never sees half a file. Feeds a ``SpectrogramSummary``."""

    def __init__(self, path: Path, sample_rate: int):
        self.path, self.sample_rate = Path(path), int(sample_rate)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(fd)
        self.file = sf.SoundFile(
            self.tmp, "w", samplerate=self.sample_rate, channels=1, format="WAV", subtype="FLOAT"
        )
        self.summary = SpectrogramSummary()

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32)
        self.file.write(block)
        self.summary.push(block)

    def close(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        Path(self.tmp).unlink(missing_ok=True)
