"""Every figure of the project: spectrograms, latent maps and strip plots (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ddsp_morph.latent.summary import pca  # noqa: E402


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


def plot_latent(enc: dict[str, np.ndarray], instruments: list[str], path: Path, title: str) -> None:
    """KL (or variance of the mean) per dimension, and a PCA map of clips coloured by instrument."""
    mu, ids = enc["mu"], enc["instrument_id"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    per_dim = enc.get("kl_per_dim", mu.var(axis=0))
    axes[0].bar(np.arange(len(per_dim)), per_dim)
    axes[0].set_xlabel("latent dimension")
    axes[0].set_ylabel("KL (nats)" if "kl_per_dim" in enc else "Var over clips of z")
    axes[0].set_title("per-dimension " + ("KL to the prior" if "kl_per_dim" in enc else "variance"))
    if len(mu) >= 2:
        mean, comps, _ = pca(mu)
        xy = (mu - mean) @ comps.T
        if xy.shape[1] == 1:
            xy = np.concatenate([xy, np.zeros_like(xy)], axis=1)
        for i in sorted(set(ids.tolist())):
            sel = ids == i
            axes[1].scatter(xy[sel, 0], xy[sel, 1], s=12, label=instruments[i])
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("PC 1")
    axes[1].set_ylabel("PC 2")
    axes[1].set_title("posterior means, PCA")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def strip_plot(
    audios: list[np.ndarray], df: pd.DataFrame, path: Path, *, title: str, sample_rate: int = 16000
) -> None:
    """Spectrograms of every step side by side, P(target) and the descriptors underneath."""
    n = len(audios)
    fig = plt.figure(figsize=(1.6 * n + 1, 5.2))
    gs = fig.add_gridspec(2, n, height_ratios=[2.2, 1])
    for i, a in enumerate(audios):
        ax = fig.add_subplot(gs[0, i])
        show_spectrogram(ax, a, sample_rate)
        ax.set_title(f"α={df['alpha'].iloc[i]:.2f}", fontsize=8)
        ax.set_xticks([])
        if i:
            ax.set_yticks([])
        else:
            ax.set_ylabel("kHz")
    ax = fig.add_subplot(gs[1, :])
    ax.plot(df["alpha"], df["p_target"], "o-", label="P(target)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("α")
    ax2 = ax.twinx()
    ax2.plot(df["alpha"], df["centroid_hz"], "s--", color="tab:orange", label="centroid (Hz)")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def spectrogram_png(
    path: Path, image: np.ndarray, *, duration: float, top_khz: float, title: str
) -> None:
    """A dB spectrogram image (bins x frames, low bins first) up to 8 kHz, over ``duration``
    seconds, as a PNG."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-80,
        vmax=max(float(image.max()) if image.size else 0.0, -79.0),
        extent=(0, duration, 0, top_khz),
    )
    ax.set_ylim(0, 8)
    ax.set_xlabel("s")
    ax.set_ylabel("kHz")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_morph(curves: pd.DataFrame, renders: pd.DataFrame, path: Path, *, title: str = "") -> None:
    """Left: P(B) against alpha, one panel per source A, a line per target B. Right: the
    classifier's accuracy for every (source, target) decoding, resynthesis in the last column."""
    sources = sorted(renders["source"].unique())
    n = max(1, len(sources))
    fig = plt.figure(figsize=(3.0 * n + 4.5, 3.6))
    gs = fig.add_gridspec(1, n + 1, width_ratios=[1.0] * n + [1.3])
    for i, a in enumerate(sources):
        ax = fig.add_subplot(gs[0, i])
        sub = curves[curves["from"] == a] if len(curves) else curves
        for b in sorted(sub["to"].unique()) if len(sub) else []:
            c = sub[sub["to"] == b]
            ax.plot(c["alpha"], c["p_b"], "o-", ms=3, label=f"→ {b}")
        ax.axhline(0.9, color="0.7", lw=0.8, ls="--")
        ax.axhline(0.1, color="0.7", lw=0.8, ls="--")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"from {a}", fontsize=9)
        ax.set_xlabel("α")
        if i == 0:
            ax.set_ylabel("classifier P(B)")
        ax.legend(fontsize=7, loc="center left")
    ax = fig.add_subplot(gs[0, n])
    cols = [*sources, "resynthesis"]
    mat = np.full((len(sources), len(cols)), np.nan)
    for r, a in enumerate(sources):
        for c, t in enumerate(cols):
            sel = renders[(renders["source"] == a) & (renders["target"] == t)]
            if len(sel):
                mat[r, c] = sel["correct"].mean()
    ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
    for r in range(mat.shape[0]):
        for c in range(mat.shape[1]):
            if np.isfinite(mat[r, c]):
                ax.text(
                    c,
                    r,
                    f"{mat[r, c]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if mat[r, c] < 0.5 else "k",
                )
    ax.set_xticks(range(len(cols)), [c[:5] for c in cols], fontsize=7, rotation=45)
    ax.set_yticks(range(len(sources)), sources, fontsize=7)
    ax.set_xlabel("decoded as")
    ax.set_title("accuracy (argmax = target)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=85)
    plt.close(fig)
