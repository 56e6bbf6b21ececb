"""Audio and pictures written at the end of a run: resynthesis next to the original."""

from __future__ import annotations

from pathlib import Path

import torch

from ddsp_morph.data.io import save_wav
from ddsp_morph.plots import spectrogram_grid


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
