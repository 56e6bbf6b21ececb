"""Exercise 3 pictures and sounds from one seed's runs: a conversion strip (one test example of
instrument A and its conversion to B's latent centroid by every conditioning) and a control
strip (the centroid model with the centroid moved -20%, 0, +20%), with the wavs.

    python experiments/ex3_conditioning/figures.py multirun/ex3/seed0 [--source violin --target flute]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ddsp_morph.build import build_datamodule  # noqa: E402
from ddsp_morph.data.io import save_wav  # noqa: E402
from ddsp_morph.evaluation.control import CONTROLS  # noqa: E402
from ddsp_morph.evaluation.latent_eval import render  # noqa: E402
from ddsp_morph.latent.geometry import centroids_of  # noqa: E402
from ddsp_morph.plots import show_spectrogram  # noqa: E402
from ddsp_morph.runs import load_run  # noqa: E402

ORDER = ["f0_loud", "centroid", "periodicity", "flatness", "roughness", "mfcc"]


def strip(panels: list[tuple[str, np.ndarray]], path: Path, title: str, sr: int) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.2), squeeze=False)
    for ax, (name, audio) in zip(axes[0], panels, strict=True):
        show_spectrogram(ax, audio, sr)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
    axes[0, 0].set_ylabel("kHz")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--source", default="violin")
    ap.add_argument("--target", default="flute")
    args = ap.parse_args()
    runs = {}
    for p in sorted(args.sweep.iterdir()):
        if (p / "checkpoints" / "last.ckpt").exists():
            runs[str(OmegaConf.load(p / "config.yaml").conditioning.name)] = p
    names = sorted(runs, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    first = load_run(runs[names[0]], checkpoint="last")
    dm = build_datamodule(first.cfg)
    dm.setup("test")
    manifest, test = dm.manifests["test"], dm.datasets["test"]
    idx = int(manifest.index[manifest["instrument"] == args.source][0])
    item = test.items[idx]
    sr = int(first.cfg.data.sample_rate)
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    panels = [(f"{args.source} (original)", item["audio"].numpy())]
    for name in names:
        run = first if name == names[0] else load_run(runs[name], checkpoint="last")
        z = centroids_of(run)[args.target]
        audio = render(run.model, item, z)["audio"]
        save_wav(
            args.out / "audio" / f"convert_{name}_{args.source}_to_{args.target}.wav", audio, sr
        )
        panels.append((f"{name} → {args.target}", audio))
    strip(
        panels,
        args.out / "conversion_strip.png",
        f"{manifest.loc[idx, 'example_id']}: {args.source} played with {args.target}'s centroid",
        sr,
    )
    if "centroid" in runs:
        run = load_run(runs["centroid"], checkpoint="last")
        ctl = CONTROLS["centroid"]
        panels = []
        for amount in (-20.0, 0.0, 20.0):
            moved = dict(item)
            moved[ctl.key] = ctl.move(item[ctl.key], amount)
            audio = render(run.model, moved, None)["audio"]
            save_wav(args.out / "audio" / f"control_centroid_{amount:+.0f}pct.wav", audio, sr)
            panels.append((f"centroid {amount:+.0f}%", audio))
        strip(
            panels, args.out / "control_strip.png", "centroid model: the centroid input moved", sr
        )
    print("wrote", args.out / "conversion_strip.png", args.out / "control_strip.png")


if __name__ == "__main__":
    main()
