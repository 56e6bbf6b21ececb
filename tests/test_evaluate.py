"""Evaluation metrics where the answer is known, the evaluation CLI on a trained run, and
checkpoint loading (weights only, clear errors)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ddsp_morph.data.features import FeatureSettings, compute_features
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.evaluation import metrics
from ddsp_morph.evaluation.resynthesis import evaluate_run, score_example
from ddsp_morph.runs import load_run

from .conftest import REPO

SR = 16000


def _tone(f0: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    # A few harmonics, so that CREPE sees an instrument-like tone.
    return sum(amp / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def ref():
    audio = _tone(440.0)
    return audio, compute_features(audio, FeatureSettings())


def test_input_scored_against_itself_is_perfect(ref):
    audio, feats = ref
    row = score_example(audio, audio, feats, FeatureSettings())
    assert row["n_voiced_frames"] > 100
    assert row["f0_cents_median"] == 0.0 and row["f0_outlier_rate"] == 0.0
    assert row["loudness_l1_db"] == 0.0 and row["spectral_distance"] == 0.0
    assert row["octave_outlier"] is False


def test_a_semitone_up_is_100_cents(ref):
    audio, feats = ref
    row = score_example(audio, _tone(440.0 * 2 ** (1 / 12)), feats, FeatureSettings())
    # CREPE tiny with the local-average decoder is within a few cents of the truth.
    assert abs(row["f0_cents_median"] - 100.0) <= 8.0
    assert row["f0_outlier_rate"] > 0.9 and row["octave_outlier"] is False
    exact = metrics.f0_metrics(
        feats["f0_hz"], feats["f0_hz"] * 2 ** (1 / 12), np.ones(len(feats["f0_hz"]), bool)
    )
    assert exact["f0_cents_median"] == pytest.approx(100.0, abs=1e-3)


def test_plus_6_db_copy_gives_6_db(ref):
    audio, feats = ref
    row = score_example(audio, audio * 10 ** (6 / 20), feats, FeatureSettings())
    assert row["loudness_l1_db"] == pytest.approx(6.0, abs=0.01)
    assert row["f0_cents_median"] <= 1.0


def test_an_octave_down_is_an_octave_outlier(ref):
    _, feats = ref
    v = np.ones(len(feats["f0_hz"]), bool)
    m = metrics.f0_metrics(feats["f0_hz"], feats["f0_hz"] / 2, v)
    assert m["octave_outlier"] is True and m["f0_cents_median"] == pytest.approx(1200.0)
    s = metrics.summarize(
        [
            {**m, "loudness_l1_db": 1.0},
            {**metrics.f0_metrics(feats["f0_hz"], feats["f0_hz"], v), "loudness_l1_db": 3.0},
        ]
    )
    assert s["octave_outlier_rate"] == 0.5 and s["loudness_l1_db"] == 2.0
    assert s["f0_outlier_rate"] == pytest.approx(0.5)


def test_truth_columns_show_what_the_estimator_hides(ref):
    audio, feats = ref
    n = len(feats["f0_hz"])
    truth = {"f0_hz": np.full(n, 220.0), "voiced": np.ones(n, bool)}  # the 440 Hz clip is "wrong"
    row = score_example(audio, audio, feats, FeatureSettings(), truth=truth)
    # the output matches the features perfectly, so the estimator-vs-itself metric sees nothing
    assert row["f0_cents_median"] == 0.0 and row["octave_frame_rate"] == 0.0
    # against the truth, both the features and the output are an octave off, frame by frame
    assert row["truth_features_octave_rate"] > 0.95 and row["truth_features_rpa"] < 0.05
    assert row["truth_output_octave_rate"] > 0.95
    right = score_example(
        audio, audio, feats, FeatureSettings(), truth={**truth, "f0_hz": np.full(n, 440.0)}
    )
    assert right["truth_features_rpa"] > 0.95 and right["truth_output_octave_rate"] == 0.0
    s = metrics.summarize([row, right])
    assert s["truth_features_octave_rate"] == pytest.approx(0.5, abs=0.03)


def test_octave_frames_counted_frame_by_frame():
    ref = np.full(100, 300.0)
    est = ref.copy()
    est[:7] = 600.0  # 7 frames an octave up: the median is fine, the frame rate is not
    v = np.ones(100, bool)
    assert metrics.f0_metrics(ref, est, v)["octave_outlier"] is False
    assert metrics.octave_error_rate(ref, est, v) == pytest.approx(0.07)


def test_loudness_floor_makes_silence_match():
    assert metrics.loudness_l1(np.full(10, -100.0), np.full(10, -90.0)) == 0.0
    assert metrics.loudness_l1(np.full(10, -20.0), np.full(10, -26.0)) == 6.0


def test_evaluate_run_writes_tables_png_and_wavs(tiny_run: Path, tiny_corpus: Path, tmp_path: Path):
    out = tmp_path / "eval"
    df, summary = evaluate_run(tiny_run, split="test", out_dir=out, n_plot=2, progress=False)
    manifest = pd.read_csv(tiny_corpus / "manifest.csv")
    assert len(df) == (manifest["split"] == "test").sum() == len(pd.read_csv(out / "metrics.csv"))
    assert set(df["instrument"]) == {"violin", "flute"}
    for col in ("spectral_distance", "f0_cents_median", "f0_outlier_rate", "loudness_l1_db"):
        assert df[col].notna().all(), col
    saved = json.loads((out / "summary.json").read_text())
    assert saved["all"]["n_examples"] == len(df) and set(saved["per_instrument"]) == {
        "violin",
        "flute",
    }
    assert saved["voiced_threshold"] == 0.5 and "octave_outlier_rate" in saved["definitions"]
    # the rendered corpus knows its true f0: features and output are scored against it too
    for col in ("truth_features_rpa", "truth_output_rpa", "truth_output_octave_rate"):
        assert df[col].notna().all(), col
    assert saved["all"]["truth_features_rpa"] > 0.8
    assert (out / "spectrograms.png").stat().st_size > 10_000
    assert len(list((out / "audio").glob("*_resynth.wav"))) == len(df)
    assert summary["global_step"] == 6


@pytest.mark.slow
def test_evaluate_cli_and_bad_run_dir(tiny_run: Path, tmp_path: Path):
    cmd = [
        sys.executable,
        "-m",
        "ddsp_morph.evaluate",
        f"out_dir={tmp_path / 'cli'}",
        "progress=false",
    ]
    ok = subprocess.run(
        [*cmd, f"run={tiny_run}", "max_examples=1", "n_plot=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "cli" / "metrics.csv").exists()
    bad = subprocess.run([*cmd, f"run={tmp_path}"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path}: no config.yaml here; not a training run directory"
    )


def test_make_eval_on_a_sweep_job_directory(tiny_run: Path, tmp_path: Path):
    import shutil

    job = tmp_path / "0_synth=harmonic,seed=0"  # Hydra's sweep sub-directories look like this
    shutil.copytree(tiny_run, job)
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "eval",
            f"RUN={job}",
            "ARGS=max_examples=1 n_plot=1 progress=false",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (job / "eval_test" / "summary.json").exists()


def test_checkpoint_from_another_config_names_the_keys(tiny_run: Path):
    run = load_run(tiny_run)
    assert run.instruments == ["flute", "violin"] and run.global_step == 6
    with pytest.raises(DDSPMorphError, match=r"does not fit.*shape: decoder\.") as e:
        load_run(tiny_run, overrides=["model.gru_size=48"])
    assert "last.ckpt" in str(e.value) or "step" in str(e.value)
    with pytest.raises(DDSPMorphError, match=r"missing: synth\.reverb\.decay_raw"):
        # Trained without reverb: a config that asks for one finds no reverb weights.
        load_run(tiny_run, overrides=["synth.reverb=true"])


def test_corrupt_checkpoint_is_one_clear_line(tiny_run: Path, tmp_path: Path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DDSPMorphError, match=rf"{bad}: cannot load checkpoint"):
        load_run(tiny_run, checkpoint=str(bad))
