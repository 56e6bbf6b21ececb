"""Audio and pictures written at the end of a run: resynthesis next to the original."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddsp_morph.data.io import save_wav  # noqa: E402


def log_spectrogram_db(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    x = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    spec = torch.stft(
        x, n_fft, hop_length=hop, window=torch.hann_window(n_fft), return_complex=True
    ).abs()
    return (20 * torch.log10(spec.clamp_min(1e-5))).numpy()


def show_spectrogram(
    ax, audio: np.ndarray, sample_rate: int, *, n_fft: int = 1024, hop: int = 256
) -> None:
    """A log-magnitude spectrogram on ``ax``: seconds across, kHz up, 80 dB of range."""
    s = log_spectrogram_db(audio, n_fft=n_fft, hop=hop)
    ax.imshow(
        s,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-80,
        vmax=max(float(s.max()) if s.size else 0.0, -79.0),
        extent=(0, len(audio) / sample_rate, 0, sample_rate / 2000),
    )


def spectrogram_grid(
    rows: list[tuple[str, np.ndarray, np.ndarray]], path: Path, *, sample_rate: int
) -> None:
    """One row per example: original | resynthesis, log-magnitude spectrograms on a shared scale."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.6 * len(rows)), squeeze=False)
    for r, (name, orig, resyn) in enumerate(rows):
        for c, (title, audio) in enumerate([("original", orig), ("resynthesis", resyn)]):
            ax = axes[r, c]
            show_spectrogram(ax, audio, sample_rate)
            ax.set_title(f"{name} — {title}", fontsize=9)
            ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("s")
    axes[-1, 1].set_xlabel("s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


@torch.no_grad()
def write_resynthesis(
    model: torch.nn.Module, dataset, out_dir: Path, *, sample_rate: int, n_examples: int = 4
) -> list[Path]:
    """Resynthesize the first ``n_examples`` of ``dataset``; write wavs and ``resynthesis.png``."""
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, written = [], []
    gen = torch.Generator().manual_seed(0)
    for i in range(min(n_examples, len(dataset))):
        item = dataset[i]
        batch = {k: v.unsqueeze(0) for k, v in item.items()}
        audio = model(batch, generator=gen)["audio"][0].numpy()
        orig = item["audio"].numpy()
        name = f"example{i:02d}"
        for suffix, a in (("original", orig), ("resynth", audio)):
            p = out_dir / f"{name}_{suffix}.wav"
            save_wav(p, a, sample_rate)
            written.append(p)
        rows.append((name, orig, audio))
    if rows:
        png = out_dir / "resynthesis.png"
        spectrogram_grid(rows, png, sample_rate=sample_rate)
        written.append(png)
    return written
