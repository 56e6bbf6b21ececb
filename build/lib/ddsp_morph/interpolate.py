"""``python -m ddsp_morph.interpolate run=<run dir> from=violin to=flute steps=11 source=<example id | file.mid>``

Renders one performance along the latent path from one instrument's centroid to another's;
writes step wavs, strip.png, metrics.csv and summary.json into ``out_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ddsp_morph.config import CONF_DIR
from ddsp_morph.data.io import save_csv, save_json, save_wav
from ddsp_morph.errors import exits_on_error


def run_interpolation(cfg: DictConfig) -> dict:
    from ddsp_morph.build import feature_settings
    from ddsp_morph.evaluation.classifier import corpus_classifier
    from ddsp_morph.evaluation.latent_eval import interpolate
    from ddsp_morph.latent.geometry import known_centroids, speed_between
    from ddsp_morph.plots import strip_plot
    from ddsp_morph.runs import load_run
    from ddsp_morph.sources import load_source

    run = load_run(cfg.run, checkpoint=str(cfg.checkpoint))
    out = Path(cfg.out_dir)
    known_centroids(run, str(cfg["from"]), str(cfg.to))  # before the classifier is trained
    clf = corpus_classifier(Path(run.cfg.data.corpus_dir), cfg.classifier or None)
    item, _ = load_source(run, str(cfg.source))
    settings = feature_settings(run.cfg)
    df, summary, audios = interpolate(
        run,
        item,
        str(cfg["from"]),
        str(cfg.to),
        steps=int(cfg.steps),
        kind=str(cfg.path),
        classifier=clf,
        settings=settings,
        speed=speed_between(run.extra.get("latent"), str(cfg["from"]), str(cfg.to), str(cfg.path))
        if cfg.even
        else None,
    )
    summary["source"] = str(cfg.source)
    summary["run"] = str(run.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(audios):
        save_wav(out / f"step{i:02d}_alpha{df['alpha'].iloc[i]:.2f}.wav", a, settings.sample_rate)
    save_csv(out / "metrics.csv", df)
    save_json(out / "summary.json", summary)
    strip_plot(
        audios,
        df,
        out / "strip.png",
        title=f"{cfg['from']} → {cfg.to} ({cfg.path}), source {cfg.source}",
    )
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="interpolate")
@exits_on_error
def main(cfg: DictConfig) -> None:
    summary = run_interpolation(cfg)
    print(json.dumps(summary, indent=2))
    print(f"wrote {cfg.out_dir}/strip.png, metrics.csv, summary.json and the step wavs")


if __name__ == "__main__":
    main()
