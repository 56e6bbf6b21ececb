"""Exercise 2 evaluation: latent statistics, interpolation paths and conversion for every run
of a sweep, in one table per task.

    python experiments/ex2_latent/evaluate_latent.py multirun/ex2 [--out experiments/ex2_latent]

For each run (checkpoint last.ckpt, with its stored centroids): the latent statistics and a
PCA map of the test split; for every pair of instruments (A -> B, A < B alphabetically) an
11-step linear path rendered from A's first test example (and a slerp path for the first
pair); conversion of the first two test examples of every instrument to every other
instrument's centroid. The classifier is trained once on the corpus's train split.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from ddsp_morph.build import build_datamodule, feature_settings
from ddsp_morph.data.io import save_wav
from ddsp_morph.evaluation.classifier import InstrumentClassifier, train_on_corpus
from ddsp_morph.evaluation.latent_eval import convert, interpolate
from ddsp_morph.latent.summary import encode_dataset, latent_stats
from ddsp_morph.plots import plot_latent, strip_plot
from ddsp_morph.runs import load_run


def label(run_dir: Path) -> str:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    lat = cfg.latent
    return f"{lat.name} β={lat.beta:g}" if lat.name == "vae" else lat.name


def evaluate(run_dir: Path, clf: InstrumentClassifier, out: Path, steps: int) -> dict:
    run = load_run(run_dir, checkpoint="last")
    settings = feature_settings(run.cfg)
    dm = build_datamodule(run.cfg)
    dm.setup("test")
    test, manifest = dm.datasets["test"], dm.manifests["test"]
    name = label(run_dir)
    tag = name.replace(" ", "_").replace("β=", "beta")
    enc = encode_dataset(run.model, test)
    stats = latent_stats(enc)
    plot_latent(
        enc,
        dm.instruments,
        out / f"pca_{tag}.png",
        f"{name}: test split, " + ", ".join(f"{k} {v:.3g}" for k, v in stats.items()),
    )
    first = {i: manifest.index[manifest["instrument"] == i].tolist() for i in dm.instruments}
    interp_rows = []
    for a, b in itertools.combinations(dm.instruments, 2):
        item = test.items[first[a][0]]
        kinds = ["linear", "slerp"] if not interp_rows else ["linear"]
        for kind in kinds:
            df, summary, audios = interpolate(
                run, item, a, b, steps=steps, kind=kind, classifier=clf, settings=settings
            )
            summary.update({"run": name, "source": manifest.loc[first[a][0], "example_id"]})
            interp_rows.append(summary)
            if len(interp_rows) <= 2:
                strip_plot(
                    audios,
                    df,
                    out / f"strip_{tag}_{a}_to_{b}_{kind}.png",
                    title=f"{name}: {a} → {b} ({kind})",
                )
                df.to_csv(out / f"path_{tag}_{a}_to_{b}_{kind}.csv", index=False)
            if len(interp_rows) == 1:
                save_wav(
                    out / f"audio_{tag}_{a}_to_{b}_alpha0.5.wav",
                    audios[len(audios) // 2],
                    settings.sample_rate,
                )
    conv_rows = []
    for a, b in itertools.permutations(dm.instruments, 2):
        for idx in first[a][:2]:
            row = convert(run, test.items[idx], b, classifier=clf, settings=settings)
            row.pop("audio")
            conv_rows.append({"run": name, "source": a, **row})
    return {
        "name": name,
        "stats": stats,
        "interp": interp_rows,
        "conv": conv_rows,
        "global_step": run.global_step,
    }


def fmt(v: pd.Series, digits: int = 2) -> str:
    v = v.astype(float)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--steps", type=int, default=11)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = sorted(p for p in args.sweep.iterdir() if (p / "checkpoints" / "last.ckpt").exists())
    corpus = Path(OmegaConf.load(runs[0] / "config.yaml").data.corpus_dir)
    clf, report = train_on_corpus(corpus)
    clf.save(args.out / "classifier.npz")
    (args.out / "classifier.json").write_text(json.dumps(report, indent=2) + "\n")
    print("classifier:", {k: v for k, v in report.items() if k != "test_confusion"})
    results = [evaluate(r, clf, args.out, args.steps) for r in runs]
    stats = pd.DataFrame(
        [{"run": r["name"], "step": r["global_step"], **r["stats"]} for r in results]
    )
    interp = pd.DataFrame([row for r in results for row in r["interp"]])
    conv = pd.DataFrame([row for r in results for row in r["conv"]])
    stats.to_csv(args.out / "latent_stats.csv", index=False)
    interp.to_csv(args.out / "interpolation.csv", index=False)
    conv.to_csv(args.out / "conversion.csv", index=False)
    lines = ["### Interpolation (linear paths, mean ± std over instrument pairs)", ""]
    lines.append(
        "| run | pairs | P(B) at α=0 | P(B) at α=1 | Spearman(α, P(B)) | non-decreasing steps | largest jump | centroid R² | HNR R² | worst f0 median (cents) | worst loudness L1 (dB) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, g in interp[interp["path"] == "linear"].groupby("run", sort=False):
        lines.append(
            f"| {name} | {len(g)} | {fmt(g['p_target_start'])} | {fmt(g['p_target_end'])} | {fmt(g['p_target_spearman'])} | "
            f"{fmt(g['p_target_monotonic_fraction'])} | {fmt(g['p_target_max_jump'])} | {fmt(g['centroid_r2'])} | {fmt(g['hnr_r2'])} | "
            f"{fmt(g['f0_cents_median_worst'], 1)} | {fmt(g['loudness_l1_db_worst'])} |"
        )
    lines += ["", "### Conversion (every ordered pair, 2 test examples each)", ""]
    lines.append(
        "| run | conversions | accuracy (argmax = B) | P(B) | f0 median (cents) | loudness L1 (dB) |"
    )
    lines.append("|---|---|---|---|---|---|")
    for name, g in conv.groupby("run", sort=False):
        lines.append(
            f"| {name} | {len(g)} | {g['correct'].mean():.2f} | {fmt(g['p_target'])} | {fmt(g['f0_cents_median'], 1)} | {fmt(g['loudness_l1_db'])} |"
        )
    lines += ["", "### Latent statistics (test split)", "", stats.round(3).to_string(index=False)]
    (args.out / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
