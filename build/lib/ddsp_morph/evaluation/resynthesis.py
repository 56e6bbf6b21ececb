"""Evaluate a trained run: resynthesize a split, score every example, write the tables."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ddsp_morph.data.features import FeatureSettings, compute_features
from ddsp_morph.data.io import load_npz, save_csv, save_json, save_wav
from ddsp_morph.dsp.spectral import multiscale_spectral_loss
from ddsp_morph.errors import DDSPMorphError, positive_int
from ddsp_morph.evaluation import metrics
from ddsp_morph.plots import spectrogram_grid
from ddsp_morph.runs import load_run

log = logging.getLogger(__name__)


def score_example(
    original: np.ndarray,
    output: np.ndarray,
    ref_features: dict[str, np.ndarray],
    settings: FeatureSettings,
    *,
    threshold: float = 0.5,
    loss_kwargs: dict | None = None,
    truth: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Every metric of one example. ``ref_features``: f0_hz, periodicity, loudness_db of the
    original, from the same estimator and settings that re-extract them from ``output``.
    ``truth`` (f0_hz, voiced; the renderer's): adds the features and the output against it."""
    n = min(len(original), len(output))
    est = compute_features(output[:n], settings)
    voiced = metrics.voiced_mask(
        ref_features["periodicity"], ref_features["loudness_db"], threshold=threshold
    )
    row: dict[str, float] = {}
    with torch.no_grad():
        row["spectral_distance"] = float(
            multiscale_spectral_loss(
                torch.from_numpy(np.asarray(output[:n], np.float32))[None],
                torch.from_numpy(np.asarray(original[:n], np.float32))[None],
                **(loss_kwargs or {}),
            )
        )
    row.update(metrics.f0_metrics(ref_features["f0_hz"], est["f0_hz"], voiced))
    row["octave_frame_rate"] = metrics.octave_error_rate(
        ref_features["f0_hz"], est["f0_hz"], voiced
    )
    if truth is not None:
        row.update(
            metrics.truth_metrics(
                truth["f0_hz"], truth["voiced"], ref_features["f0_hz"], "truth_features"
            )
        )
        row.update(
            metrics.truth_metrics(truth["f0_hz"], truth["voiced"], est["f0_hz"], "truth_output")
        )
    row["loudness_l1_db"] = metrics.loudness_l1(ref_features["loudness_db"], est["loudness_db"])
    return row


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    checkpoint: str = "best",
    out_dir: str | Path | None = None,
    corpus_dir: str | Path | None = None,
    threshold: float = 0.5,
    n_plot: int = 4,
    max_examples: int | None = None,
    indices: list[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Resynthesize ``split`` of the run's corpus (its first ``max_examples``, or the examples
    at ``indices``); write metrics.csv, summary.json, spectrograms.png and the wavs into
    ``out_dir`` (default ``<run>/eval_<split>``)."""
    from ddsp_morph.build import build_datamodule, feature_settings

    if max_examples is not None:
        max_examples = positive_int(max_examples, "max_examples")
    overrides = [f"data.corpus_dir={corpus_dir}"] if corpus_dir else []
    run = load_run(run_dir, checkpoint=checkpoint, overrides=overrides)
    cfg = run.cfg
    out = Path(out_dir) if out_dir else run.run_dir / f"eval_{split}"
    dm = build_datamodule(cfg)
    dm.setup("test")
    if split not in dm.datasets:
        raise DDSPMorphError(f"split: expected train, valid or test, got {split!r}")
    if run.instruments and run.instruments != dm.instruments:
        raise DDSPMorphError(
            f"{dm.corpus_dir}: corpus instruments {dm.instruments} differ from the run's {run.instruments}"
        )
    dataset, manifest = dm.datasets[split], dm.manifests[split]
    if not len(dataset):
        raise DDSPMorphError(f"{dm.corpus_dir}: the {split} split is empty for this run")
    settings = feature_settings(cfg)
    loss = cfg.model.loss
    loss_kwargs = dict(
        fft_sizes=tuple(loss.fft_sizes),
        overlap=float(loss.overlap),
        linear_weight=float(loss.linear_weight),
        log_weight=float(loss.log_weight),
    )
    sr = int(cfg.data.sample_rate)
    n = len(dataset) if max_examples is None else min(len(dataset), max_examples)
    picked = list(range(n)) if indices is None else [int(i) for i in indices]
    bad = [i for i in picked if not 0 <= i < len(dataset)]
    if bad:
        raise DDSPMorphError(f"indices: {bad} outside the {split} split's {len(dataset)} examples")
    rows, plots = [], []
    gen = torch.Generator().manual_seed(seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for i in tqdm(picked, desc=f"evaluate {split}", disable=not progress):
        item = dataset[i]
        with torch.no_grad():
            batch = {k: v.unsqueeze(0) for k, v in item.items()}
            output = run.model(batch, generator=gen)["audio"][0].numpy()
        original = item["audio"].numpy()
        ref = {k: item[k].numpy() for k in ("f0_hz", "periodicity", "loudness_db")}
        if "mask" in item:  # score the audio, not the silence padding a last piece
            n_valid = int(item["mask"].sum())
            hop = len(original) // len(item["mask"])
            original, output = original[: n_valid * hop], output[: n_valid * hop]
            ref = {k: v[:n_valid] for k, v in ref.items()}
        row = {
            "example_id": manifest.loc[i, "example_id"],
            "instrument": manifest.loc[i, "instrument"],
        }
        truth = None
        if "truth_path" in manifest.columns and isinstance(manifest.loc[i, "truth_path"], str):
            entry = load_npz(dm.corpus_dir / manifest.loc[i, "truth_path"])
            if entry is None:
                log.warning("%s: truth missing or unreadable", manifest.loc[i, "truth_path"])
            else:
                n_ref = len(ref["f0_hz"])
                truth = {
                    "f0_hz": entry["f0_hz"][:n_ref],
                    "voiced": entry["voiced"][:n_ref].astype(bool),
                }
        row.update(
            score_example(
                original,
                output,
                ref,
                settings,
                threshold=threshold,
                loss_kwargs=loss_kwargs,
                truth=truth,
            )
        )
        rows.append(row)
        save_wav(out / "audio" / f"{row['example_id']}_resynth.wav", output, sr)
        if len(plots) < n_plot:
            save_wav(out / "audio" / f"{row['example_id']}_original.wav", original, sr)
            plots.append((f"{row['example_id']}", original, output))
    df = pd.DataFrame(rows)
    save_csv(out / "metrics.csv", df)
    summary = {
        "run_dir": str(run.run_dir),
        "checkpoint": str(run.checkpoint_path),
        "global_step": run.global_step,
        "split": split,
        "f0_estimator": f"torchcrepe {settings.f0_model} ({settings.f0_decoder})",
        "voiced_threshold": threshold,
        "all": metrics.summarize(rows),
        "per_instrument": {
            name: metrics.summarize(group.to_dict("records"))
            for name, group in df.groupby("instrument")
        },
        "definitions": {
            "f0_cents": "|1200 log2(f0_out / f0_in)| on frames with input periodicity >= "
            f"{threshold} and loudness > -60 dB",
            "f0_outlier_rate": f"fraction of those frames off by more than {metrics.OUTLIER_CENTS:.0f} cents",
            "octave_outlier_rate": "fraction of examples whose median error is >= "
            f"{metrics.OCTAVE_OUTLIER_CENTS:.0f} cents",
            "octave_frame_rate": "fraction of those frames within 100 cents of an octave off",
            "truth_features_*": "the input's f0 features against the renderer's true f0, on "
            "frames where a note is held (rpa: within 50 cents; octave_rate: 1200 +- 100 "
            "cents off); only for corpora with truth",
            "truth_output_*": "the output's re-extracted f0 against the renderer's true f0, "
            "same frames",
            "loudness_l1_db": "mean |L_out - L_in| over all frames, A-weighted, floored at -80 dB",
            "spectral_distance": "the training loss (multi-scale spectral) of output vs input",
        },
    }
    save_json(out / "summary.json", summary)
    if plots:
        spectrogram_grid(plots, out / "spectrograms.png", sample_rate=sr)
    log.info("evaluated %d examples of %s: %s", len(df), split, summary["all"])
    return df, summary
