"""What an import reports: the balance of minutes per instrument and split, as a table and a figure."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ddsp_morph.data.importer.segment import valid_frames
from ddsp_morph.data.importer.settings import ImportSettings
from ddsp_morph.data.io import (  # noqa: E402
    load_npz,
)

log = logging.getLogger(__name__)


def cap_train_minutes(manifest: pd.DataFrame) -> pd.DataFrame:
    """Keep as many training examples per instrument as the smallest instrument has (the first
    ones in file order, so the cut is deterministic); valid/test stay whole."""
    train = manifest[manifest["split"] == "train"]
    n = int(train.groupby("instrument").size().min())
    kept = train.groupby("instrument", sort=False).head(n)
    return pd.concat([kept, manifest[manifest["split"] != "train"]]).sort_index()


def note_name(hz: float) -> str:
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    m = int(round(69 + 12 * np.log2(hz / 440.0)))
    return f"{names[m % 12]}{m // 12 - 1}"


def balance_report(
    corpus_dir: Path,
    manifest: pd.DataFrame,
    s: ImportSettings,
    *,
    sound_seconds: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per instrument: minutes of audio in the corpus (padding excluded), the sounding minutes
    kept of those in the source folder, examples, files, pitch and loudness range; and
    balance.png. ``sound_seconds``: instrument -> seconds of sound in its source files."""
    rows, pitches = [], {}
    for instrument, g in manifest.groupby("instrument"):
        f0s, louds = [], []
        for r in g.itertuples():
            feats = load_npz(corpus_dir / r.feature_path)
            n = valid_frames(r.valid_samples, s.hop_length)
            feats = {k: feats[k][:n] for k in ("periodicity", "f0_hz", "loudness_db")}
            v = feats["periodicity"] >= s.voiced_threshold
            f0s.append(feats["f0_hz"][v])
            louds.append(feats["loudness_db"][v])
        f0, ld = np.concatenate(f0s), np.concatenate(louds)
        pitches[instrument] = 69 + 12 * np.log2(f0 / 440.0)
        lo, hi = np.percentile(f0, [5, 95]) if len(f0) else (np.nan, np.nan)
        minutes = float(g["valid_samples"].sum() / s.sample_rate / 60)
        kept = float(g["sound_seconds"].sum() / 60)
        total = (sound_seconds or {}).get(instrument, float("nan")) / 60
        rows.append(
            {
                "instrument": instrument,
                "minutes": minutes,
                "train_minutes": float(
                    g[g["split"] == "train"]["valid_samples"].sum() / s.sample_rate / 60
                ),
                "sound_minutes_kept": kept,
                "sound_minutes_total": total,
                "kept_fraction": kept / total if total > 0 else float("nan"),
                "examples": int(len(g)),
                "files": int(g["source_file"].nunique()),
                "pitch_p05": note_name(lo) if np.isfinite(lo) else "-",
                "pitch_p95": note_name(hi) if np.isfinite(hi) else "-",
                "loudness_p05_db": float(np.percentile(ld, 5)) if len(ld) else np.nan,
                "loudness_p95_db": float(np.percentile(ld, 95)) if len(ld) else np.nan,
                "below_minimum": bool(minutes < s.min_minutes_warning),
            }
        )
    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(max(11.0, 6.0 + 0.45 * len(df)), 4.4))
    axes[0].bar(
        df["instrument"],
        df["minutes"],
        color=["tab:red" if b else "tab:blue" for b in df["below_minimum"]],
    )
    axes[0].tick_params(axis="x", labelrotation=45)
    for label in axes[0].get_xticklabels():
        label.set_horizontalalignment("right")
    axes[0].axhline(
        s.min_minutes_warning,
        color="k",
        ls="--",
        lw=0.8,
        label=f"minimum {s.min_minutes_warning:g} min",
    )
    axes[0].set_ylabel("minutes")
    axes[0].legend()
    axes[0].set_title(f"audio per instrument (balance: {s.balance})")
    names = list(pitches)
    axes[1].boxplot(
        [pitches[n] if len(pitches[n]) else [np.nan] for n in names],
        orientation="horizontal",
        whis=(5, 95),
        showfliers=False,
    )
    axes[1].set_yticks(range(1, len(names) + 1), names, fontsize=8)
    axes[1].set_xlabel("MIDI pitch of voiced frames (box: quartiles, whiskers: 5th-95th pct.)")
    axes[1].set_title("pitch range")
    fig.tight_layout()
    fig.savefig(corpus_dir / "balance.png", dpi=90)
    plt.close(fig)
    return df


def print_summary(balance: pd.DataFrame, skipped: list[tuple[str, str]], s: ImportSettings) -> None:
    print(balance.round(2).to_string(index=False))
    for r in balance.itertuples():
        print(
            f"{r.instrument}: kept {r.sound_minutes_kept:.2f} of {r.sound_minutes_total:.2f} "
            f"min of sound ({r.kept_fraction:.0%})"
        )
    for r in balance.itertuples():
        if r.below_minimum:
            print(
                f"warning: {r.instrument} has {r.minutes:.1f} min, less than {s.min_minutes_warning:g} min"
            )
    if skipped:
        print(f"skipped {len(skipped)}:")
        for f, why in skipped:
            print(f"  {f}: {why}")
