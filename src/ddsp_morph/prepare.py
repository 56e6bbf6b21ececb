"""``python -m ddsp_morph.prepare``: build the default corpus and cache its features."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ddsp_morph.config import validate_config
from ddsp_morph.data.corpus import build_corpus, extract_corpus_features
from ddsp_morph.data.importer import ImportSettings, import_folder
from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.training.build import (
    context_settings,
    corpus_dir,
    corpus_settings,
    feature_settings,
)

log = logging.getLogger(__name__)
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def import_settings(cfg: DictConfig) -> ImportSettings:
    src, d = cfg.data.source, cfg.data
    return ImportSettings(
        sample_rate=int(d.sample_rate),
        hop_length=int(d.hop_length),
        example_seconds=float(d.example_seconds),
        silence_db=float(src.silence_db),
        min_silence_seconds=float(src.min_silence_seconds),
        max_rest_seconds=float(src.get("max_rest_seconds", 0.5)),
        min_piece_seconds=float(src.get("min_piece_seconds", 0.5)),
        clip_level=float(src.clip_level),
        max_clipped_fraction=float(src.max_clipped_fraction),
        min_voiced_fraction=float(src.min_voiced_fraction),
        balance=str(src.balance),
        min_minutes_warning=float(src.min_minutes_warning),
        split_fractions=dict(d.corpus.split_fractions),
    )


def prepare(cfg: DictConfig) -> Path:
    validate_config(cfg)
    out = corpus_dir(cfg)
    source = cfg.data.get("source", {}).get("dir")
    if source:
        print(
            f"importing {source} as the corpus {cfg.data.corpus.name!r} ({out}); "
            "another name: data.corpus.name=<name>"
        )
        usable, skipped = import_folder(
            Path(source),
            out,
            import_settings(cfg),
            feature_settings(cfg),
            context=context_settings(cfg),
        )
        print(f"corpus ready at {out}: {len(usable)} examples usable, {len(skipped)} skipped")
        return out
    manifest = build_corpus(corpus_settings(cfg), out)
    usable, skipped = extract_corpus_features(
        out, feature_settings(cfg), context=context_settings(cfg)
    )
    minutes = usable.groupby("instrument")["seconds"].sum() / 60.0
    print(
        f"corpus ready at {out}: {len(usable)} of {len(manifest)} examples usable, {len(skipped)} skipped"
    )
    for name, m in minutes.items():
        print(f"  {name:12s} {m:6.2f} min")
    return out


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    try:
        prepare(cfg)
    except DDSPMorphError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def hydra_quote(value: str) -> str:
    """A value as a quoted Hydra override string: spaces, commas, brackets, '=' and any
    alphabet pass through as they are."""
    return "'" + value.replace("'", "\\'") + "'"


def source_argv(argv: list[str]) -> list[str]:
    """``--source <folder>`` (what ``make data SOURCE=<folder>`` passes) -> the Hydra overrides
    data.source.dir=<absolute folder> and, unless given, data.corpus.name=<its name>, quoted so
    that folder names with spaces, commas or accents work."""
    if "--source" not in argv:
        return argv
    i = argv.index("--source")
    if i + 1 >= len(argv):
        raise SystemExit("error: --source needs a folder")
    folder = Path(argv[i + 1]).expanduser().absolute()
    rest = argv[:i] + argv[i + 2 :]
    out = [*rest, f"data.source.dir={hydra_quote(str(folder))}"]
    if not any(a.startswith("data.corpus.name=") for a in rest):
        out.append(f"data.corpus.name={hydra_quote(folder.name)}")
    return out


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *source_argv(sys.argv[1:])]
    main()
