"""Exercise 1.1: how good are the f0 and loudness features, measured against the renderer's truth.

    python experiments/feature_validation/validate.py [--corpus data/corpus/gm_default]
        [--per-instrument 6] [--split test] [--out experiments/feature_validation]
        [--render cello bassoon ...] [--estimators "crepe tiny" ...]

--render: first render a validation corpus of these instruments (1 minute each, the default
corpus's renderer and SoundFont, seed 0) into --corpus and use all of it.

f0: torchcrepe tiny and full (viterbi path + local average, as the project decodes) and
librosa pyin, on the same examples, scored with mir_eval against the truth the SoundFont
renderer played (f0 of the sounding note with pitch bend; voiced = a note is held). Loudness:
a known +6 dB gain, the A-weighting curve against IEC 61672 at the standard octave bands, and
the rank correlation of frame loudness with the performed dynamics (velocity and expression).
Writes f0_results.csv, loudness.json and three PNGs into --out; prints the tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mir_eval
import numpy as np
import pandas as pd
import torch
from scipy.stats import pearsonr, spearmanr

from ddsp_morph.data.features import FeatureSettings, extract_f0, extract_loudness
from ddsp_morph.data.io import load_npz, read_audio
from ddsp_morph.dsp.loudness import a_weighting_db

# IEC 61672-1 A-weighting at the octave-band centres (dB).
IEC_A = {
    31.5: -39.4,
    63: -26.2,
    125: -16.1,
    250: -8.6,
    500: -3.2,
    1000: 0.0,
    2000: 1.2,
    4000: 1.0,
    8000: -1.1,
}
VOICING_THRESHOLD = 0.5


def crepe(model: str, **kw):
    kw.setdefault("f0_hop_length", None)  # CREPE on every frame unless a variant says otherwise
    s = FeatureSettings(f0_model=model, **kw)

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f0, periodicity = extract_f0(audio, s)
        return f0, periodicity >= VOICING_THRESHOLD

    return run


def pyin(audio: np.ndarray, sr: int = 16000, hop: int = 128) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    f0, voiced, _ = librosa.pyin(
        audio, fmin=50.0, fmax=2000.0, sr=sr, frame_length=1024, hop_length=hop, fill_na=None
    )
    n = len(audio) // hop
    return f0[:n].astype(np.float32), voiced[:n]


def pesto_estimator(audio: np.ndarray, sr: int = 16000, hop: int = 128):
    import pesto

    model = pesto.load_model("mir-1k_g7", step_size=1000.0 * hop / sr, sampling_rate=sr)
    with torch.inference_mode():
        f0, conf, _, _ = model(
            torch.from_numpy(audio), sr=sr, convert_to_freq=True, return_activations=True
        )
    n = len(audio) // hop
    f0, conf = f0.numpy().ravel()[:n], conf.numpy().ravel()[:n]
    return np.maximum(f0, 1.0).astype(np.float32), conf >= VOICING_THRESHOLD


ESTIMATORS = {
    "crepe tiny": crepe("tiny"),  # features v3 on every frame
    # the project's features since f0_hop_length=256: CREPE every 16 ms, interpolated
    "crepe tiny, no octave check": crepe("tiny", f0_octave_check=False),
    "crepe tiny, torchcrepe viterbi (v2)": crepe(
        "tiny", f0_octave_check=False, f0_decoder="torchcrepe_viterbi"
    ),
    "crepe tiny, hop 256": crepe("tiny", f0_hop_length=256),
    "crepe tiny, hop 320": crepe("tiny", f0_hop_length=320),
    "crepe full": crepe("full"),
    "pesto": pesto_estimator,
    "pyin": pyin,
}
TRANSITION_FRAMES = 5  # frames (40 ms) from a note onset or pitch change: "transition"


def score(ref_f0, ref_voiced, est_f0, est_voiced, loudness_db) -> dict[str, float]:
    n = min(len(ref_f0), len(est_f0))
    ref_f0, ref_v, est_f0, est_v = ref_f0[:n], ref_voiced[:n], est_f0[:n], est_voiced[:n]
    ref_cent = mir_eval.melody.hz2cents(np.where(ref_v, ref_f0, 0.0))
    est_cent = mir_eval.melody.hz2cents(np.maximum(est_f0, 0.0))
    rv, ev = ref_v.astype(float), est_v.astype(float)
    recall, false_alarm = mir_eval.melody.voicing_measures(rv, ev)
    err = np.abs(1200 * np.log2(est_f0[ref_v] / ref_f0[ref_v]))
    # frames within TRANSITION_FRAMES after a truth onset, offset or pitch change (> 30 cents):
    # the new note is still entering there (the estimator hears the old one for 20-40 ms)
    change = np.zeros(n, bool)
    cents = 1200 * np.log2(np.maximum(ref_f0, 1.0))
    change[1:] = (ref_v[1:] != ref_v[:-1]) | (np.abs(np.diff(cents)) > 30)
    transition = np.zeros(n, bool)
    for j in np.flatnonzero(change):
        transition[j : j + TRANSITION_FRAMES] = True
    steady = ~transition[ref_v]
    signed = 1200 * np.log2(est_f0[ref_v] / ref_f0[ref_v])
    return {
        "rpa_steady": float((err[steady] < 50).mean()),
        "octave_error_rate": float((np.abs(np.abs(signed) - 1200) < 100).mean()),
        "harmonic_error_rate": float((np.abs(signed) >= 650).mean()),
        "frames_voiced": int(ref_v.sum()),
        "raw_pitch_accuracy": mir_eval.melody.raw_pitch_accuracy(
            rv, ref_cent, ev, est_cent, cent_tolerance=50
        ),
        "raw_chroma_accuracy": mir_eval.melody.raw_chroma_accuracy(
            rv, ref_cent, ev, est_cent, cent_tolerance=50
        ),
        "median_cents": float(np.median(err)),
        "p95_cents": float(np.percentile(err, 95)),
        "voicing_recall": float(recall),
        "voicing_false_alarm": float(false_alarm),
        # False alarms where the truth is unvoiced *and* the audio is near silence (< -60 dB):
        # the rest of the unvoiced truth is mostly release tails, which do sound at the pitch.
        "voicing_false_alarm_silent": float(est_v[~ref_v & (loudness_db[:n] < -60)].mean())
        if (~ref_v & (loudness_db[:n] < -60)).any()
        else float("nan"),
    }


def f0_table(
    corpus: Path, manifest: pd.DataFrame, out: Path, estimators: list[str]
) -> pd.DataFrame:
    rows, errors = [], {}
    for name in estimators:
        estimate = ESTIMATORS[name]
        for instrument, group in manifest.groupby("instrument"):
            refs, ests, seconds, spent = [], [], 0.0, 0.0
            for r in group.itertuples():
                audio, sr = read_audio(corpus / r.audio_path, expected_rate=16000)
                truth = load_npz(corpus / r.truth_path)
                t0 = time.perf_counter()
                f0, voiced = estimate(audio)
                spent += time.perf_counter() - t0
                seconds += len(audio) / sr
                loud = extract_loudness(audio, FeatureSettings())
                refs.append((truth["f0_hz"], truth["voiced"].astype(bool), loud))
                ests.append((f0, voiced))
            ref_f0 = np.concatenate([r[0][: len(e[0])] for r, e in zip(refs, ests, strict=True)])
            ref_v = np.concatenate([r[1][: len(e[0])] for r, e in zip(refs, ests, strict=True)])
            est_f0 = np.concatenate([e[0][: len(r[0])] for r, e in zip(refs, ests, strict=True)])
            est_v = np.concatenate([e[1][: len(r[0])] for r, e in zip(refs, ests, strict=True)])
            row = {"estimator": name, "instrument": instrument, "seconds": seconds}
            ref_ld = np.concatenate([r[2][: len(e[0])] for r, e in zip(refs, ests, strict=True)])
            row.update(score(ref_f0, ref_v, est_f0, est_v, ref_ld))
            row["x_realtime"] = seconds / spent
            rows.append(row)
            errors[(name, instrument)] = 1200 * np.log2(est_f0[ref_v] / ref_f0[ref_v])
            print(
                f"{name:10s} {instrument:9s} RPA {row['raw_pitch_accuracy']:.3f} {row['x_realtime']:.2f}x rt",
                flush=True,
            )
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in estimators:
        e = np.abs(np.concatenate([v for (n, _), v in errors.items() if n == name]))
        xs = np.sort(e)
        ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=name)
    ax.set_xscale("log")
    ax.set_xlim(0.5, 3000)
    ax.axvline(50, color="k", lw=0.5, ls="--")
    ax.set_xlabel("|f0 error| (cents), voiced truth frames, all instruments")
    ax.set_ylabel("fraction of frames")
    ax.legend()
    ax.set_title("f0 error CDF against the renderer's truth")
    fig.tight_layout()
    fig.savefig(out / "f0_error_cdf.png", dpi=100)
    plt.close(fig)
    return df


def loudness_checks(corpus: Path, manifest: pd.DataFrame, out: Path) -> dict:
    s = FeatureSettings()
    # 1. +6 dB in gives +6 dB out (frames above -70 dB, so the floor does not interfere).
    diffs = []
    # 3. Correlation with the performed dynamics.
    corr_rows, scatter = {}, {}
    for instrument, group in manifest.groupby("instrument"):
        ld_all, dyn_all = [], []
        for r in group.itertuples():
            audio, _ = read_audio(corpus / r.audio_path, expected_rate=16000)
            truth = load_npz(corpus / r.truth_path)
            ld = extract_loudness(audio, s)
            ld6 = extract_loudness(audio * 10 ** (6 / 20), s)
            loud = ld > -70
            diffs.append(ld6[loud] - ld[loud])
            v = truth["voiced"].astype(bool)[: len(ld)]
            performed = 40 * np.log10(
                np.maximum(truth["velocity"][: len(ld)], 1) / 127
            ) + 40 * np.log10(np.maximum(truth["expression"][: len(ld)], 1) / 127)
            ld_all.append(ld[v])
            dyn_all.append(performed[v])
        ld_i, dyn_i = np.concatenate(ld_all), np.concatenate(dyn_all)
        corr_rows[instrument] = {
            "spearman": float(spearmanr(ld_i, dyn_i).statistic),
            "pearson": float(pearsonr(ld_i, dyn_i).statistic),
            "frames": int(len(ld_i)),
        }
        scatter[instrument] = (dyn_i, ld_i)
    d = np.concatenate(diffs)
    gain = {
        "mean_db": float(d.mean()),
        "max_abs_dev_db": float(np.abs(d - 20 * np.log10(10 ** (6 / 20))).max()),
    }
    # 2. A-weighting curve: the formula, and a sine of each frequency through the loudness feature.
    t = np.arange(16000) / 16000
    ref = extract_loudness(np.sin(2 * np.pi * 1000 * t).astype(np.float32), s)[20:-20].mean()
    curve = []
    for f, iec in IEC_A.items():
        formula = float(a_weighting_db(torch.tensor([f], dtype=torch.float64))[0])
        if f >= s.sample_rate / 2:  # a sine at Nyquist samples to zeros: not measurable
            curve.append(
                {"hz": f, "iec_61672_db": iec, "formula_db": formula, "feature_sine_db": None}
            )
            continue
        tone = extract_loudness(np.sin(2 * np.pi * f * t).astype(np.float32), s)[20:-20].mean()
        curve.append(
            {
                "hz": f,
                "iec_61672_db": iec,
                "formula_db": formula,
                "feature_sine_db": float(tone - ref),
            }
        )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    hz = np.geomspace(20, 8000, 200)
    axes[0].semilogx(hz, a_weighting_db(torch.from_numpy(hz)).numpy(), label="a_weighting_db")
    axes[0].semilogx(
        [c["hz"] for c in curve], [c["iec_61672_db"] for c in curve], "o", label="IEC 61672"
    )
    axes[0].semilogx(
        [c["hz"] for c in curve if c["feature_sine_db"] is not None],
        [c["feature_sine_db"] for c in curve if c["feature_sine_db"] is not None],
        "x",
        label="sine through the feature",
    )
    axes[0].set_xlabel("Hz")
    axes[0].set_ylabel("dB re 1 kHz")
    axes[0].legend()
    axes[0].set_title("A-weighting")
    for instrument, (dyn, ld) in scatter.items():
        step = max(1, len(ld) // 3000)
        axes[1].scatter(dyn[::step], ld[::step], s=2, alpha=0.4, label=instrument)
    axes[1].set_xlabel("performed dynamics: 40 log10(vel/127) + 40 log10(expr/127) (dB)")
    axes[1].set_ylabel("A-weighted loudness (dB)")
    axes[1].legend(markerscale=5)
    axes[1].set_title("Loudness vs performed dynamics (voiced frames)")
    fig.tight_layout()
    fig.savefig(out / "loudness.png", dpi=100)
    plt.close(fig)
    return {"gain_plus_6db": gain, "a_weighting": curve, "dynamics_correlation": corr_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus/gm_default"))
    ap.add_argument("--per-instrument", type=int, default=6, help="examples per instrument")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--render", nargs="*", default=None, help="instruments to render first")
    ap.add_argument("--estimators", nargs="*", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    ap.add_argument("--skip-loudness", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.render:
        from ddsp_morph.data.corpus import CorpusSettings, build_corpus

        build_corpus(
            CorpusSettings(instruments=tuple(args.render), minutes_per_instrument=1.0), args.corpus
        )
    manifest = pd.read_csv(args.corpus / "manifest.csv")
    if not args.render:
        manifest = manifest[manifest["split"] == args.split]
    manifest = manifest.groupby("instrument").head(args.per_instrument)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_loudness:
        loud = loudness_checks(args.corpus, manifest, args.out)
        (args.out / "loudness.json").write_text(json.dumps(loud, indent=2) + "\n")
        print(json.dumps(loud, indent=2))
    df = f0_table(args.corpus, manifest, args.out, args.estimators)
    df.to_csv(args.out / "f0_results.csv", index=False)
    summary = df.groupby("estimator")[
        [
            "raw_pitch_accuracy",
            "rpa_steady",
            "octave_error_rate",
            "raw_chroma_accuracy",
            "median_cents",
            "p95_cents",
            "voicing_recall",
            "voicing_false_alarm",
            "voicing_false_alarm_silent",
            "x_realtime",
        ]
    ].mean()
    print(df.round(3).to_string(index=False))
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
