"""Audio in, measured: streamed f0 against the offline features and the renderer's truth,
cost per block on one thread, level invariance (-12/0/+12 dB), a CC1 sweep, and the latency.

    python experiments/realtime/audio_in/measure.py --run runs/<run> [--per-instrument 3]

Run from the directory whose data/ holds the run's corpus (the rendered default corpus: it
keeps the truth). Writes results.json, a spectrogram PNG and the wavs into this folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ddsp_morph.data.features import FeatureSettings, compute_features
from ddsp_morph.data.io import load_npz, read_audio, save_wav
from ddsp_morph.dsp.descriptors import spectral_centroid_hz
from ddsp_morph.evaluation.classifier import corpus_classifier
from ddsp_morph.realtime.audio_in import (
    AudioFollower,
    AudioInSettings,
    corpus_stats,
    render_audio_file,
)
from ddsp_morph.realtime.cli import write_render
from ddsp_morph.realtime.performer import PerformerSettings
from ddsp_morph.runs import load_run

OUT = Path(__file__).parent


def cents(a, b):
    return 1200 * np.log2(np.asarray(a, np.float64) / np.asarray(b, np.float64))


def tracker_table(run, corpus: Path, per_instrument: int) -> list[dict]:
    m = pd.read_csv(corpus / "manifest.csv")
    m = m[m.split == "test"].groupby("instrument").head(per_instrument)
    stats = corpus_stats(run)
    rows = []
    for tracker in ("yin", "pesto"):
        for inst, g in m.groupby("instrument"):
            e_feat, e_truth, cost, lag_frames = [], [], [], 0.0
            for r in g.itertuples():
                audio, _ = read_audio(corpus / r.audio_path, expected_rate=16000)
                feats = load_npz(corpus / r.feature_path)
                truth = load_npz(corpus / r.truth_path)
                fol = AudioFollower(
                    sample_rate=16000, hop=128, input_rate=16000, stats=stats,
                    settings=AudioInSettings(tracker=tracker),
                )  # fmt: skip
                f0s = []
                for i in range(0, len(audio) - 127, 128):
                    t0 = time.perf_counter()
                    hop = audio[i : i + 128]
                    f, c = fol.pesto(hop) if fol.pesto else fol.pitch(torch.from_numpy(hop))
                    cost.append(time.perf_counter() - t0)
                    f0s.append((f, c))
                lag_frames = fol.pitch.lag_frames
                lag = int(round(lag_frames))
                # streamed frame i + lag describes the audio around offline frame i (+1: a
                # streamed frame ends at the hop's last sample, an offline one is centred)
                f = np.array([x[0] for x in f0s])[lag - 1 :]
                conf = np.array([x[1] for x in f0s])[lag - 1 :]
                n = min(len(f), len(feats["f0_hz"]))
                f, conf = f[:n], conf[:n]
                v_feat = (feats["periodicity"][:n] >= 0.5) & (feats["loudness_db"][:n] > -60)
                v_feat &= conf >= fol.threshold
                e_feat.append(cents(f[v_feat], feats["f0_hz"][:n][v_feat]))
                v_truth = truth["voiced"][:n].astype(bool) & (conf >= fol.threshold)
                e_truth.append(cents(f[v_truth], truth["f0_hz"][:n][v_truth]))
            ef, et = np.abs(np.concatenate(e_feat)), np.abs(np.concatenate(e_truth))
            rows.append(
                {
                    "tracker": tracker,
                    "instrument": inst,
                    "vs_features_median_cents": float(np.median(ef)),
                    "vs_features_within_50c": float((ef < 50).mean()),
                    "vs_truth_median_cents": float(np.median(et)),
                    "vs_truth_rpa": float((et < 50).mean()),
                    "frames": int(len(ef)),
                    "ms_per_hop_median": 1000 * float(np.median(cost)),
                    "lag_ms": 1000 * lag_frames * 128 / 16000,
                }
            )
            print(rows[-1], flush=True)
    return rows


def centroid_hz(audio: np.ndarray, sr: int) -> float:
    x = torch.from_numpy(audio.astype(np.float32))[None]
    c = spectral_centroid_hz(x, sample_rate=sr, hop_length=512, n_fft=2048)[0].numpy()
    rms = np.sqrt(np.mean(audio[: len(c) * 512].reshape(len(c), 512) ** 2, axis=1))
    return float(np.median(c[rms > 1e-3])) if (rms > 1e-3).any() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--per-instrument", type=int, default=3)
    ap.add_argument("--source", default="violin_0003_0")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run, checkpoint="last")
    corpus = Path(run.cfg.data.corpus_dir)
    clf = corpus_classifier(corpus)
    results: dict = {"run": str(args.run), "instruments": run.instruments}
    results["trackers"] = tracker_table(run, corpus, args.per_instrument)
    m = pd.read_csv(corpus / "manifest.csv").set_index("example_id")
    src = corpus / m.loc[args.source, "audio_path"]
    audio, _ = read_audio(src, expected_rate=16000)
    target = "flute" if m.loc[args.source, "instrument"] != "flute" else "trumpet"
    source = m.loc[args.source, "instrument"]
    s = PerformerSettings(source=source, target=target, path="slerp")
    # level invariance: the phrase at -12, 0, +12 dB, morph at the target
    level_rows = []
    for db in (-12, 0, 12):
        path = OUT / f"in_{db:+d}dB.wav"
        save_wav(path, np.clip(audio * 10 ** (db / 20), -1, 1), 16000)
        for tracker in ("yin", "pesto"):
            y, st = render_audio_file(run, path, s, AudioInSettings(tracker=tracker), morph=1.0)
            y16 = y[::3]
            p = clf.proba_of(y16)
            level_rows.append(
                {
                    "input_db": db,
                    "tracker": tracker,
                    f"p_{target}": float(p[target]),
                    "centroid_hz": centroid_hz(y, 48000),
                    "auto_gain_db_final": st["auto_gain_db_final"],
                    "real_time_factor": st["real_time_factor"],
                    "x_realtime": 1.0 / st["real_time_factor"],
                    "tracker_ms_median": st["tracker_ms_median"],
                    "model_ms_median": st["model_ms_median"],
                }
            )
            print(level_rows[-1], flush=True)
        path.unlink()
    results["level"] = level_rows
    # the CC1 sweep: source at the start, target at the end
    y, st = render_audio_file(run, src, s, AudioInSettings(), sweep=True)
    write_render(OUT / f"sweep_{source}_to_{target}.wav", y, 48000, st)
    sec = 48000
    first, last = y[:sec][::3], y[-sec:][::3]
    results["sweep"] = {
        "source": source,
        "target": target,
        "p_source_first_second": float(clf.proba_of(first)[source]),
        "p_target_first_second": float(clf.proba_of(first)[target]),
        "p_source_last_second": float(clf.proba_of(last)[source]),
        "p_target_last_second": float(clf.proba_of(last)[target]),
        "stats": st,
    }
    # f0 follows: the output's f0 (offline CREPE) against the input's features
    feats_in = compute_features(audio, FeatureSettings())
    feats_out = compute_features(y[::3][: len(audio)], FeatureSettings())
    v = (feats_in["periodicity"] >= 0.5) & (feats_out["periodicity"] >= 0.5)
    lag = int(round(st["tracker_lag_ms"] / 8))
    n = min(len(feats_in["f0_hz"]), len(feats_out["f0_hz"]) - lag)
    v = v[:n] & (feats_out["periodicity"][lag : lag + n] >= 0.5)
    e = np.abs(cents(feats_out["f0_hz"][lag : lag + n][v], feats_in["f0_hz"][:n][v]))
    results["sweep"]["output_f0_vs_input_median_cents"] = float(np.median(e))
    results["sweep"]["output_f0_within_50c"] = float((e < 50).mean())
    # latency: a pitch step in a synthetic tone, through the whole path at 48 kHz
    sr = 48000
    t = np.arange(2 * sr) / sr
    f = np.where(t < 1.0, 330.0, 440.0)
    phase = 2 * np.pi * np.cumsum(f) / sr
    tone = (0.2 * sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))).astype(np.float32)
    save_wav(OUT / "step.wav", tone, sr)
    y, st = render_audio_file(run, OUT / "step.wav", s, AudioInSettings(), morph=0.0)
    (OUT / "step.wav").unlink()
    fo = compute_features(y[::3], FeatureSettings())["f0_hz"]
    ti = np.arange(len(fo)) * 128 / 16000
    cross = ti[np.argmax((ti > 0.9) & (fo > np.sqrt(330 * 440)))]
    block_ms = 1000 * 384 / 48000
    results["latency"] = {
        "pitch_step_in_s": 1.0,
        "pitch_step_out_s": float(cross),
        "measured_step_delay_ms": float(1000 * (cross - 1.0)),
        "tracker_lag_ms": st["tracker_lag_ms"],
        "input_resampler_ms": st["resampler_in_ms"],
        "output_upsampler_ms": 1000 * 23.5 / 48000,
        "device_input_buffer_ms": block_ms,
        "device_output_buffer_ms": block_ms,
        "total_ms": block_ms * 2
        + st["tracker_lag_ms"]
        + st["resampler_in_ms"]
        + 1000 * 23.5 / 48000,
    }
    print(json.dumps(results["sweep"], indent=1), json.dumps(results["latency"], indent=1))
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
