"""Your recordings, end to end: the README's two commands keep the import intact, the corpus
records what made it, every instrument gets its share of the minutes in valid and test, and
links or a change of settings never mix one corpus with another."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from ddsp_morph.data.corpus import build_corpus
from ddsp_morph.data.features import FeatureSettings
from ddsp_morph.data.importer import (
    ImportSettings,
    assign_file_splits,
    import_folder,
    scan_source,
)
from ddsp_morph.errors import DDSPMorphError

from .conftest import REPO, TINY
from .test_import import take_with_rests, tone


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def two_instruments(src: Path, n: int, seconds, stem: str = "take") -> Path:
    """violin and flute folders of ``n`` harmonic tones each; ``seconds(i)`` long."""
    for name, f0 in (("violin", 440.0), ("flute", 660.0)):
        (src / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            sf.write(src / name / f"{stem}{i}.wav", tone(seconds(i), 16000, f0 + 9 * i), 16000)
    return src


def split_shares(manifest: pd.DataFrame) -> pd.DataFrame:
    """instrument x split: the split's share of the instrument's audio (padding excluded)."""
    secs = manifest.groupby(["instrument", "split"])["valid_samples"].sum().unstack(fill_value=0)
    return secs.div(secs.sum(axis=1), axis=0)


@pytest.fixture(scope="module")
def takes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two instruments, three takes each of 9-11 s with rests and breaths, as a player records."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("takes") / "recordings"
    for name in ("violin", "flute"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            sf.write(root / name / f"take{i}.wav", take_with_rests(rng, rng.uniform(9, 11)), 16000)
    return root


@pytest.mark.slow
def test_the_readmes_own_recordings_commands_keep_the_import(takes: Path, tmp_path: Path):
    """`make data SOURCE=<folder>`, then `make train ARGS="data.corpus.name=<name>"` as the
    README says (with a smoke-sized training added): the train command's set-up checks the
    imported corpus instead of rendering the default one into it, and the run trains on the
    imported examples."""
    data, runs = tmp_path / "data", tmp_path / "runs"
    paths = f"paths.data_dir={data} paths.runs_dir={runs}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    imported = subprocess.run(
        ["make", "data", f"SOURCE={takes}", f"ARGS={paths}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    corpus = data / "corpus" / takes.name
    manifest_bytes = (corpus / "manifest.csv").read_bytes()
    audio_before = sorted(p.relative_to(corpus) for p in (corpus / "audio").rglob("*.wav"))
    smoke = (
        "trainer.max_steps=3 trainer.check_val_every_n_epoch=1 model.hidden_size=16 "
        "model.gru_size=16 synth.n_harmonics=16 latent.encoder_gru_size=16 latent.z_dim=4 "
        "data.batch_size=4 logger=csv trainer.enable_progress_bar=false n_audio_examples=1 "
        "morph.n_examples=1 morph.steps=3"
    )
    trained = subprocess.run(
        ["make", "train", f"ARGS=data.corpus.name={takes.name} {paths} {smoke}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (corpus / "manifest.csv").read_bytes() == manifest_bytes
    assert sorted(p.relative_to(corpus) for p in (corpus / "audio").rglob("*.wav")) == audio_before
    assert "checked" in trained.stdout and "nothing rendered" in trained.stdout
    (run,) = [p.parent for p in runs.glob("*/config.yaml")]
    used = pd.read_csv(run / "examples.csv")
    manifest = pd.read_csv(corpus / "manifest.csv")
    assert sorted(used["example_id"]) == sorted(manifest["example_id"])
    assert sorted(used["instrument"].unique()) == ["flute", "violin"]
    assert (run / "morph.csv").exists() and (run / "stability.json").exists()
    said = trained.stdout + trained.stderr  # what the end of the run says of the user's audio
    assert (
        "audio, for a listener:" in said and "under the 4 min" in said and "expect blends" in said
    )


def cfg_for_prepare(data: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("prepare", overrides=[f"paths.data_dir={data}", *overrides])


@pytest.mark.slow
def test_prepare_without_source_checks_or_resumes_an_import_and_never_renders(
    takes: Path, tmp_path: Path, capsys
):
    from ddsp_morph.prepare import prepare

    data = tmp_path / "data"
    src = tmp_path / "recs"
    shutil.copytree(takes, src)
    prepare(cfg_for_prepare(data, f"data.source.dir={src}", "data.corpus.name=recs"))
    corpus = data / "corpus" / "recs"
    before = files_under(corpus)
    origin = json.loads((corpus / "corpus.json").read_text())
    assert origin["kind"] == "imported" and origin["complete"] and origin["source"] == str(src)
    assert sorted(origin["files"]) == [
        f"{i}/take{k}.wav" for i in ("flute", "violin") for k in range(3)
    ]
    capsys.readouterr()
    # no source: checked, nothing written
    prepare(cfg_for_prepare(data, "data.corpus.name=recs"))
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "recs" in ln]
    assert "checked" in line and str(src) in line
    assert files_under(corpus) == before
    # a feature cache lost: resumed from the recorded folder, the same manifest again
    feature = next((corpus / "features").rglob("*.npz"))
    feature.unlink()
    prepare(cfg_for_prepare(data, "data.corpus.name=recs"))
    out = capsys.readouterr().out
    assert "resuming it from that folder" in out and "nothing rendered" in out
    assert feature.exists()
    assert (corpus / "manifest.csv").read_bytes() == before["manifest.csv"]
    # lost again, and the recordings are gone: one line, nothing rendered
    feature.unlink()
    shutil.rmtree(src)
    with pytest.raises(DDSPMorphError) as e:
        prepare(cfg_for_prepare(data, "data.corpus.name=recs"))
    assert "\n" not in str(e.value) and "folder is gone" in str(e.value)
    assert not list((corpus / "audio").rglob("*_0000_0.wav"))  # no rendered example


@pytest.mark.slow
def test_a_render_never_writes_into_an_imported_corpus(takes: Path, tmp_path: Path):
    corpus = tmp_path / "corpus"
    s = ImportSettings(example_seconds=2.0, min_voiced_fraction=0.0)
    import_folder(takes, corpus, s, FeatureSettings(), progress=False)
    before = files_under(corpus)
    with pytest.raises(DDSPMorphError) as e:
        build_corpus(TINY, corpus, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and f"an import of {takes}" in msg and "a render of" in msg
    assert files_under(corpus) == before
    # and an import never writes into a render
    render = tmp_path / "render"
    build_corpus(TINY, render, progress=False)
    rendered = files_under(render)
    with pytest.raises(DDSPMorphError, match="holds a render of") as e:
        import_folder(takes, render, s, FeatureSettings(), progress=False)
    assert files_under(render) == rendered


def test_importing_again_with_other_settings_is_refused(tmp_path: Path):
    src = two_instruments(tmp_path / "recs", 3, lambda i: 2.3)
    corpus = tmp_path / "corpus"
    first = ImportSettings(example_seconds=1.0)
    import_folder(src, corpus, first, FeatureSettings(), progress=False)
    before = files_under(corpus)
    with pytest.raises(DDSPMorphError) as e:
        import_folder(
            src, corpus, ImportSettings(example_seconds=0.5), FeatureSettings(), progress=False
        )
    msg = str(e.value)
    change = "example_seconds 1.0 -> 0.5"  # the key, its recorded value and the new one
    assert "\n" not in msg and change in msg and "data.corpus.name" in msg
    assert files_under(corpus) == before  # nothing mixed in
    import_folder(src, corpus, first, FeatureSettings(), progress=False)  # the same: fine


@pytest.mark.slow
def test_every_instrument_gets_its_share_of_the_minutes(tmp_path: Path):
    """12 takes of 1.5-4.5 s per instrument: valid and test each hold 10% of every
    instrument's audio, within 3 points."""
    rng = np.random.default_rng(11)
    src = tmp_path / "recs"
    for name, f0 in (("violin", 440.0), ("flute", 660.0)):
        (src / name).mkdir(parents=True)
        for i in range(12):
            sf.write(
                src / name / f"t{i:02d}.wav", tone(rng.uniform(1.5, 4.5), 16000, f0 + 7 * i), 16000
            )
    settings = ImportSettings(example_seconds=1.0, min_voiced_fraction=0.0)
    manifest, _ = import_folder(src, tmp_path / "c", settings, FeatureSettings(), progress=False)
    shares = split_shares(manifest)
    for split in ("valid", "test"):
        assert (shares[split] - 0.1).abs().max() <= 0.03, shares
    assert manifest.groupby("source_file")["split"].nunique().max() == 1  # files stay whole
    # adding recordings moves no file imported before; the new ones fill what splits lack
    before = manifest.set_index("example_id")["split"]
    for name, f0 in (("violin", 440.0), ("flute", 660.0)):
        for i in range(12, 16):
            sf.write(
                src / name / f"t{i:02d}.wav", tone(rng.uniform(1.5, 4.5), 16000, f0 + 5 * i), 16000
            )
    after, _ = import_folder(src, tmp_path / "c", settings, FeatureSettings(), progress=False)
    after = after.set_index("example_id")["split"]
    assert after.loc[before.index].equals(before)
    assert len(after) > len(before)


@pytest.mark.parametrize("seed", range(60))
def test_split_shares_hold_for_any_folder_of_ten_or_more_files(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 120))
    low, high = [(4, 12), (1, 30), (0.5, 3)][seed % 3]
    seconds = {f"take{i}.wav": float(rng.uniform(low, high)) for i in range(n)}
    shas = {f: f"{seed}-{i}" for i, f in enumerate(seconds)}
    if n > 12:  # a copy under another name: one unit
        shas["copy.wav"], seconds["copy.wav"] = shas["take3.wav"], seconds["take3.wav"]
    fractions = {"train": 0.8, "valid": 0.1, "test": 0.1}
    splits = assign_file_splits(shas, fractions, "violin", seconds=seconds)
    total = sum(seconds.values())
    for name in ("valid", "test"):
        share = sum(s for f, s in seconds.items() if splits[f] == name) / total
        assert abs(share - 0.1) <= 0.03, (name, share, n)
    if "copy.wav" in shas:
        assert splits["copy.wav"] == splits["take3.wav"]


def test_takes_named_by_the_user_are_held_out(tmp_path: Path):
    src = two_instruments(tmp_path / "recs", 5, lambda i: 1.2)
    sf.write(src / "flute" / "concert.wav", tone(1.2, 16000, 700.0), 16000)
    settings = ImportSettings(
        example_seconds=1.0,
        test_takes=["violin/take4.wav", "concert.wav"],
        valid_takes=["*/take0.wav"],
    )
    manifest, _ = import_folder(src, tmp_path / "c", settings, FeatureSettings(), progress=False)
    split = manifest.groupby(manifest["source_file"].map(lambda p: "/".join(Path(p).parts[-2:])))[
        "split"
    ].first()
    assert split["violin/take4.wav"] == "test" and split["flute/concert.wav"] == "test"
    assert split["violin/take0.wav"] == "valid" and split["flute/take0.wav"] == "valid"
    with pytest.raises(DDSPMorphError, match="both"):
        import_folder(
            src,
            tmp_path / "d",
            ImportSettings(example_seconds=1.0, test_takes=["take1.wav"], valid_takes=["*1.wav"]),
            FeatureSettings(),
            progress=False,
        )


def test_links_are_followed_once_and_only_within_their_instrument(tmp_path: Path):
    src = tmp_path / "recs"
    outside = tmp_path / "elsewhere" / "more violin"
    for folder in (src / "violin", src / "flute", outside):
        folder.mkdir(parents=True)
        sf.write(folder / "a.wav", tone(1.0, 16000, 440.0), 16000)
    (src / "violin" / "loop").symlink_to("..", target_is_directory=True)  # the source itself
    (src / "violin" / "self").symlink_to(".", target_is_directory=True)
    (src / "violin" / "fl").symlink_to(src / "flute", target_is_directory=True)
    (src / "violin" / "f.wav").symlink_to(src / "flute" / "a.wav")
    (src / "violin" / "extra").symlink_to(outside, target_is_directory=True)
    (src / "violin" / "extra2").symlink_to(outside, target_is_directory=True)
    found, skipped = scan_source(src)
    violin = sorted(str(p.relative_to(src)) for p in found["violin"])
    assert violin == ["violin/a.wav", "violin/extra/a.wav"]
    assert [str(p.relative_to(src)) for p in found["flute"]] == ["flute/a.wav"]
    reasons = {Path(p).name: why for p, why in skipped}
    assert set(reasons) == {"loop", "self", "fl", "f.wav", "extra2"}
    assert "loop" in reasons["loop"] and "another instrument" in reasons["fl"]
    assert "once" in reasons["extra2"]


def test_the_morph_table_is_said_plainly_for_a_listener():
    from ddsp_morph.evaluation.morph_table import listener_line, summarize

    pairs = pd.DataFrame(
        {
            "from": ["flute", "violin"],
            "to": ["violin", "flute"],
            "p_b_start": [0.0, 0.0],
            "p_b_end": [0.95, 0.7],
            "p_b_start_all": [0.02, 0.01],
            "p_b_end_all": [0.96, 0.75],
            "spearman": [1.0, 0.98],
            "max_step": [0.2, 0.4],
            "f0_cents_median_worst": [2.0, 3.5],
            "loudness_l1_db_worst": [0.5, 0.6],
            "centroid_step_ratio": [1.0, 1.0],
            "hnr_step_ratio": [1.0, 1.0],
        }
    )
    renders = pd.DataFrame(
        {
            "source": ["flute", "violin", "flute", "violin"],
            "target": ["resynthesis", "resynthesis", "violin", "flute"],
            "correct": [1.0, 0.5, 1.0, 1.0],
        }
    )
    line = listener_line(summarize(pairs, renders))
    assert "1 of 2 pairs end as a blend" in line and "violin -> flute" in line and "75%" in line
    assert "jumps" in line and "violin is recognised in only 50%" in line and "3.5 cents" in line
    good = pairs.assign(p_b_end_all=[0.96, 0.93], max_step=[0.2, 0.3])
    line = listener_line(summarize(good, renders.assign(correct=1.0)))
    assert "every pair ends as its target instrument (at least 93%" in line
    assert "moves gradually" in line and "every instrument is recognised" in line


def test_the_audio_a_corpus_gives_the_morph_is_said_against_what_was_measured(tmp_path: Path):
    from ddsp_morph.evaluation.morph_table import AUDIO_ENOUGH_MINUTES, audio_line, corpus_minutes

    rendered = tmp_path / "rendered"
    rendered.mkdir()
    pd.DataFrame(
        {"instrument": ["flute"] * 3 + ["violin"] * 2, "split": ["train"] * 5, "seconds": 60.0}
    ).to_csv(rendered / "manifest.csv", index=False)
    assert corpus_minutes(rendered) == {"flute": 3.0, "violin": 2.0}
    imported = tmp_path / "imported"
    imported.mkdir()
    pd.DataFrame(  # an import counts the sounding seconds, not the padded examples
        {"instrument": ["flute", "flute"], "seconds": 4.0, "sound_seconds": [3.0, 1.5]}
    ).to_csv(imported / "manifest.csv", index=False)
    assert corpus_minutes(imported) == {"flute": 4.5 / 60}
    short = audio_line({"flute": 9.0, "violin": AUDIO_ENOUGH_MINUTES - 0.5})
    assert f"{AUDIO_ENOUGH_MINUTES - 0.5:.1f} min per instrument at the least (violin)" in short
    assert "under the" in short and "expect blends" in short and "8 min:" in short
    enough = audio_line({"flute": 9.0, "violin": AUDIO_ENOUGH_MINUTES})
    assert "enough:" in enough and "expect blends" not in enough
