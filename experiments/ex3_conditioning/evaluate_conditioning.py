"""Exercise 3 evaluation: reconstruction, conversion and control for every run of a
conditioning sweep, aggregated into one table per task (mean ± std over seeds).

    python experiments/ex3_conditioning/evaluate_conditioning.py multirun/ex3/seed0 multirun/ex3/seed1 ... \
        [--out experiments/ex3_conditioning] [--examples 12]

Each run's results are kept in ``<run>/ex3_eval.json`` (written atomically) and reused, so an
interrupted evaluation resumes and a sweep can be evaluated while it is still training
(``--ready-only`` skips runs without stability.json, i.e. not finished).

Per run (checkpoint last.ckpt):
- reconstruction: ``make eval``'s metrics on the first ``--examples`` test examples (balanced
  over instruments: the test split is ordered by instrument, so every instrument's first
  examples are taken);
- conversion: the first two test examples of every instrument A, rendered with every other
  instrument B's latent centroid — A's f0, loudness *and A's context signals* — scored by the
  instrument classifier (trained once on the corpus's real audio) for P(B), and for f0 and
  loudness preservation;
- control: for each signal the run is conditioned on (loudness, and its context signal), the
  first test example of every instrument rendered with the signal moved by known amounts;
  slope and R² of the re-extracted change against the asked one, and the worst f0 error.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ddsp_morph.build import build_datamodule, context_settings, feature_settings  # noqa: E402
from ddsp_morph.data.io import save_json  # noqa: E402
from ddsp_morph.evaluation.classifier import InstrumentClassifier, train_on_corpus  # noqa: E402
from ddsp_morph.evaluation.control import (  # noqa: E402
    control_example,
    controllable,
    summarize_control,
)
from ddsp_morph.evaluation.latent_eval import convert  # noqa: E402
from ddsp_morph.evaluation.resynthesis import evaluate_run  # noqa: E402
from ddsp_morph.runs import load_run  # noqa: E402


def balanced_indices(manifest: pd.DataFrame, n: int) -> list[int]:
    """Up to n test indices, taking the instruments' examples in turn."""
    per = [g.index.tolist() for _, g in manifest.groupby("instrument")]
    out = []
    for round_ in itertools.zip_longest(*per):
        out += [i for i in round_ if i is not None]
    return sorted(out[:n])


def evaluate(run_dir: Path, clf: InstrumentClassifier, n_examples: int) -> dict:
    run = load_run(run_dir, checkpoint="last")
    cfg = run.cfg
    name, seed = str(cfg.conditioning.name), int(cfg.seed)
    settings, context = feature_settings(cfg), context_settings(cfg)
    dm = build_datamodule(cfg)
    dm.setup("test")
    test, manifest = dm.datasets["test"], dm.manifests["test"]
    # Reconstruction: the evaluation CLI on a balanced subset of the test split.
    picked = balanced_indices(manifest, n_examples)
    recon_df, _ = evaluate_run(run_dir, checkpoint="last", progress=False, indices=picked)
    recon = {"conditioning": name, "seed": seed, "step": run.global_step, "examples": len(recon_df)}
    recon.update(recon_df.drop(columns=["example_id", "instrument"]).mean().to_dict())
    first = {i: manifest.index[manifest["instrument"] == i].tolist() for i in dm.instruments}
    conv = []
    for a, b in itertools.permutations(dm.instruments, 2):
        for idx in first[a][:2]:
            row = convert(run, test.items[idx], b, classifier=clf, settings=settings)
            row.pop("audio")
            conv.append({"conditioning": name, "seed": seed, "source": a, **row})
    ctrl_rows, ctrl = [], []
    for signal in controllable(list(run.model.conditioning)):
        rows = []
        for inst in dm.instruments:
            rows += [
                {"conditioning": name, "seed": seed, "instrument": inst, **r}
                for r in control_example(
                    run.model,
                    test.items[first[inst][0]],
                    signal,
                    z=None,
                    settings=settings,
                    context=context,
                )
            ]
        ctrl_rows += rows
        ctrl.append(
            {"conditioning": name, "seed": seed, "signal": signal, **summarize_control(rows)}
        )
    return {"recon": recon, "conv": conv, "ctrl": ctrl, "ctrl_rows": ctrl_rows}


def fmt(v: pd.Series, digits: int = 2) -> str:
    v = v.astype(float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


ORDER = ["f0_loud", "centroid", "periodicity", "flatness", "roughness", "mfcc"]


def ordered(df: pd.DataFrame) -> list[str]:
    names = list(dict.fromkeys(df["conditioning"]))
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def tables(recon: pd.DataFrame, conv: pd.DataFrame, ctrl: pd.DataFrame) -> list[str]:
    lines = ["### Reconstruction (test subset; mean ± std over seeds)", ""]
    lines.append(
        "| conditioning | seeds | spectral dist. | f0 median (cents) | f0 outliers >50c | loudness L1 (dB) |"
    )
    lines.append("|---|---|---|---|---|---|")
    for n in ordered(recon):
        g = recon[recon["conditioning"] == n]
        lines.append(
            f"| {n} | {len(g)} | {fmt(g['spectral_distance'], 3)} | {fmt(g['f0_cents_median'], 1)} | "
            f"{fmt(g['f0_outlier_rate'], 3)} | {fmt(g['loudness_l1_db'])} |"
        )
    lines += [
        "",
        "### Conversion to another instrument's latent centroid (mean ± std over seeds)",
        "",
    ]
    lines.append(
        "| conditioning | seeds | conversions / seed | accuracy (argmax = B) | P(B) | f0 median (cents) | loudness L1 (dB) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    per_seed = (
        conv.assign(correct=conv["correct"].astype(float))
        .groupby(["conditioning", "seed"])[
            ["correct", "p_target", "f0_cents_median", "loudness_l1_db"]
        ]
        .mean()
        .reset_index()
    )
    counts = conv.groupby(["conditioning", "seed"]).size()
    for n in ordered(per_seed):
        g = per_seed[per_seed["conditioning"] == n]
        lines.append(
            f"| {n} | {len(g)} | {int(counts[n].iloc[0])} | {fmt(g['correct'])} | {fmt(g['p_target'])} | "
            f"{fmt(g['f0_cents_median'], 1)} | {fmt(g['loudness_l1_db'])} |"
        )
    lines += ["", "### Control: asked vs obtained change (mean ± std over seeds)", ""]
    lines.append(
        "| conditioning | signal moved | seeds | slope (1 = exact) | R² | worst f0 median (cents) |"
    )
    lines.append("|---|---|---|---|---|---|")
    for n in ordered(ctrl):
        for signal, g in ctrl[ctrl["conditioning"] == n].groupby("signal", sort=False):
            lines.append(
                f"| {n} | {signal} | {len(g)} | {fmt(g['slope'])} | {fmt(g['r2'])} | "
                f"{fmt(g['f0_cents_median_worst'], 1)} |"
            )
    return lines


def control_plot(rows: pd.DataFrame, path: Path) -> None:
    signals = list(dict.fromkeys(rows["signal"]))
    fig, axes = plt.subplots(1, len(signals), figsize=(3.6 * len(signals), 3.4), squeeze=False)
    for ax, signal in zip(axes[0], signals, strict=True):
        g = rows[rows["signal"] == signal]
        for n in ordered(g):
            h = g[g["conditioning"] == n].groupby("asked")["obtained"].agg(["mean", "std"])
            ax.errorbar(h.index, h["mean"], yerr=h["std"], marker="o", capsize=2, label=n)
        lim = [g["asked"].min(), g["asked"].max()]
        ax.plot(lim, lim, "k:", lw=1, label="asked = obtained")
        ax.set_title(f"move {signal} ({g['unit'].iloc[0]})", fontsize=9)
        ax.set_xlabel("asked")
        ax.set_ylabel("obtained")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--examples", type=int, default=12)
    ap.add_argument("--ready-only", action="store_true")
    ap.add_argument(
        "--only", nargs="*", default=[], help="evaluate runs whose name holds one of these"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = sorted(
        p
        for sweep in args.sweeps
        for p in sweep.iterdir()
        if (p / "checkpoints" / "last.ckpt").exists()
        and (not args.ready_only or (p / "stability.json").exists())
        and (not args.only or any(o in p.name for o in args.only))
    )
    if not runs:
        raise SystemExit(f"error: {args.sweeps}: no run with checkpoints/last.ckpt")
    corpus = Path(OmegaConf.load(runs[0] / "config.yaml").data.corpus_dir)
    clf, report = train_on_corpus(corpus)
    (args.out / "classifier.json").write_text(json.dumps(report, indent=2) + "\n")
    print("classifier:", {k: v for k, v in report.items() if k != "test_confusion"})
    results = []
    for r in runs:
        cache = r / "ex3_eval.json"
        if cache.exists():
            results.append(json.loads(cache.read_text()))
            continue
        print("evaluating", r, flush=True)
        results.append(evaluate(r, clf, args.examples))
        save_json(cache, results[-1])
    recon = pd.DataFrame([r["recon"] for r in results])
    conv = pd.DataFrame([row for r in results for row in r["conv"]])
    ctrl = pd.DataFrame([row for r in results for row in r["ctrl"]])
    ctrl_rows = pd.DataFrame([row for r in results for row in r["ctrl_rows"]])
    recon.to_csv(args.out / "reconstruction.csv", index=False)
    conv.to_csv(args.out / "conversion.csv", index=False)
    ctrl.to_csv(args.out / "control.csv", index=False)
    ctrl_rows.to_csv(args.out / "control_rows.csv", index=False)
    control_plot(ctrl_rows, args.out / "control.png")
    lines = tables(recon, conv, ctrl)
    (args.out / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
