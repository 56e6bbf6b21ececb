"""``python -m ddsp_morph.prepare``: build the default corpus and cache its features."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ddsp_morph.build import context_settings, corpus_dir, corpus_settings, feature_settings
from ddsp_morph.config import CONF_DIR, validate_config
from ddsp_morph.data.corpus import build_corpus, extract_corpus_features
from ddsp_morph.data.importer import ImportSettings, check_import, import_folder
from ddsp_morph.data.origin import IMPORTED, read_origin
from ddsp_morph.errors import DDSPMorphError, exits_on_error

log = logging.getLogger(__name__)


def import_settings(cfg: DictConfig) -> ImportSettings:
    src, d = cfg.data.source, cfg.data
    return ImportSettings(
        sample_rate=int(d.sample_rate),
        hop_length=int(d.hop_length),
        example_seconds=float(d.example_seconds),
        silence_db=float(src.silence_db),
        min_silence_seconds=float(src.min_silence_seconds),
        max_rest_seconds=float(src.max_rest_seconds),
        min_piece_seconds=float(src.min_piece_seconds),
        clip_level=float(src.clip_level),
        max_clipped_fraction=float(src.max_clipped_fraction),
        min_voiced_fraction=float(src.min_voiced_fraction),
        balance=str(src.balance),
        min_minutes_warning=float(src.min_minutes_warning),
        split_fractions=dict(d.corpus.split_fractions),
        test_takes=[str(p) for p in src.test_takes],
        valid_takes=[str(p) for p in src.valid_takes],
    )


def prepare(cfg: DictConfig) -> Path:
    validate_config(cfg)
    out = corpus_dir(cfg)
    source = cfg.data.source.dir
    origin = read_origin(out)
    if not source and origin is not None and origin["kind"] == IMPORTED:
        return check_or_resume_import(cfg, out, origin)
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


def check_or_resume_import(cfg: DictConfig, out: Path, origin: dict) -> Path:
    """``prepare`` with no source on an imported corpus renders nothing: it checks that the
    finished import is whole, or resumes the import from the folder it recorded, and says which
    in one line."""
    name, folder = cfg.data.corpus.name, Path(origin["source"])
    problem = check_import(out, origin, feature_settings(cfg), context_settings(cfg))
    if problem is None:
        n = sum(1 for _ in (out / "manifest.csv").open()) - 1
        print(
            f"corpus {name!r}: the import of {folder}, checked: {n} examples, whole (nothing "
            f"rendered; to add recordings: make data SOURCE=<that folder>)"
        )
        return out
    if not folder.is_dir():
        raise DDSPMorphError(
            f"{out}: the import of {folder} is not whole ({problem}) and that folder is gone; "
            "bring it back and run `make data` again, or import into a new name"
        )
    print(
        f"corpus {name!r}: the import of {folder} is not whole ({problem}); resuming it from "
        "that folder (nothing rendered)"
    )
    usable, skipped = import_folder(
        folder, out, import_settings(cfg), feature_settings(cfg), context=context_settings(cfg)
    )
    print(f"corpus ready at {out}: {len(usable)} examples usable, {len(skipped)} skipped")
    return out


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
@exits_on_error
def main(cfg: DictConfig) -> None:
    prepare(cfg)


def hydra_quote(value: str) -> str:
    """A value as a quoted Hydra override string: spaces, commas, brackets, '=', quotes, '$',
    '${...}' (escaped, not an interpolation) and any alphabet pass through as they are."""
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


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
