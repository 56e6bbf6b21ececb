"""Importing a messy folder of recordings: formats, rates, channels, bad files, balance,
splits by source file, and resuming after a SIGKILL with the same manifest."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ddsp_morph.data.datamodule import CorpusDataModule
from ddsp_morph.data.features import FeatureSettings
from ddsp_morph.data.importer import ImportSettings, import_folder, sounding_regions
from ddsp_morph.data.io import load_npz
from ddsp_morph.errors import DDSPMorphError

from .conftest import REPO

SETTINGS = ImportSettings(example_seconds=1.0, min_minutes_warning=5.0)


def tone(
    seconds: float, rate: int, f0: float, amp: float = 0.3, channels: int = 1, gaps=()
) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * f0 * t + 0.003 * f0 / 5 * np.sin(2 * np.pi * 5 * t)  # 5 Hz vibrato
    x = sum(amp / k * np.sin(k * phase) for k in (1, 2, 3, 4))
    for g0, g1 in gaps:
        x[int(g0 * rate) : int(g1 * rate)] = 0.0
    x = x.astype(np.float32)
    return np.stack([x, 0.8 * x], axis=1) if channels == 2 else x


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    v, f = root / "violin", root / "flute"
    v.mkdir()
    f.mkdir()
    (root / "notes.txt").write_text("not an instrument folder")
    # violin: three times the audio of the flute, in every format, rate and channel count.
    sf.write(v / "a_stereo48k.wav", tone(4.6, 48000, 392.0, channels=2, gaps=[(2.0, 2.6)]), 48000)
    sf.write(v / "b_44k.flac", tone(3.2, 44100, 440.0), 44100)
    sf.write(v / "c.ogg", tone(3.2, 16000, 494.0), 16000, format="OGG", subtype="VORBIS")
    sf.write(v / "d.mp3", tone(3.2, 22050, 523.0), 22050, format="MP3")
    sf.write(v / "e.aiff", tone(2.2, 32000, 587.0), 32000, format="AIFF")
    clipped = tone(2.2, 16000, 659.0, amp=0.6)
    clipped[:16000] = np.clip(clipped[:16000] * 4, -1, 1)  # the first second is clipped hard
    sf.write(v / "f_clipped.wav", clipped, 16000, subtype="FLOAT")
    # bad files
    sf.write(v / "g_silent.wav", np.zeros(32000, np.float32), 16000)
    nan = tone(2.0, 16000, 440.0)
    nan[100] = np.nan
    sf.write(v / "h_nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(v / "i_short.wav", tone(0.3, 16000, 440.0), 16000)
    (v / "j_corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (v / "k_empty.flac").write_bytes(b"")
    full = root / "full.wav"
    sf.write(full, tone(4.5, 16000, 440.0), 16000, subtype="PCM_16")
    (v / "l_cut_short.wav").write_bytes(full.read_bytes()[: 44 + 3 * 16000 * 2])
    full.unlink()
    (v / "m_dangling.wav").symlink_to(root / "gone.wav")
    (v / "n_gone_folder").symlink_to(root / "gone_folder", target_is_directory=True)
    for i, f0 in enumerate((523.0, 587.0, 659.0)):
        sf.write(f / f"{i}_22k.wav", tone(1.2, 22050, f0), 22050)
    return root


@pytest.fixture(scope="module")
def imported(messy: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("imported") / "corpus"
    manifest, skipped = import_folder(messy, out, SETTINGS, FeatureSettings(), progress=False)
    return out, manifest, skipped


def test_bad_files_are_skipped_with_a_reason(imported, messy: Path):
    _, _, skipped = imported
    reasons = {Path(f).name: why for f, why in skipped}
    assert reasons["g_silent.wav"].startswith("silent")
    assert "NaN or inf" in reasons["h_nan.wav"]
    assert reasons["i_short.wav"].startswith("too short: 0.30 s of sound, the shortest piece")
    assert "cannot read audio" in reasons["j_corrupt.wav"]
    assert reasons["k_empty.flac"] == "empty file (0 bytes)"
    assert reasons["l_cut_short.wav"].startswith("cut short: 3.00 s of the 4.50 s its header")
    assert reasons["m_dangling.wav"].startswith("link to a missing target")
    assert reasons["n_gone_folder"].startswith("link to a missing target")
    assert all("\n" not in why for why in reasons.values())
    table = pd.read_csv(imported[0] / "skipped.csv")
    assert set(Path(f).name for f in table["file"]) >= {
        "g_silent.wav",
        "h_nan.wav",
        "i_short.wav",
        "j_corrupt.wav",
        "l_cut_short.wav",
        "m_dangling.wav",
    }


def test_examples_formats_splits_and_clipping(imported):
    out, manifest, _ = imported
    files = manifest.groupby("source_file")["split"].nunique()
    assert (files == 1).all()  # no recording on two sides
    names = {Path(p).name for p in manifest["source_file"]}
    assert {"a_stereo48k.wav", "b_44k.flac", "c.ogg", "d.mp3", "e.aiff", "f_clipped.wav"} <= names
    a = manifest[manifest["source_file"].str.endswith("a_stereo48k.wav")]
    # 2.0 s of sound, the 0.6 s rest kept up to 0.5 s, 2.0 s of sound: four full examples
    # and a last piece of 0.5 s padded under a mask
    assert len(a) == 5
    assert list(a["valid_samples"])[:4] == [16000] * 4
    assert abs(list(a["valid_samples"])[4] - 8000) <= 3 * 128  # regions are found per hop
    sound = a["sound_seconds"].sum()  # the 4.0 s of tone, all of it in the corpus
    assert abs(sound - 4.0) < 0.02
    f = manifest[manifest["source_file"].str.endswith("f_clipped.wav")]
    assert len(f) == 1 and f["start_s"].iloc[0] >= 1.0  # the clipped first second is dropped
    assert set(manifest.loc[manifest.instrument == "violin", "split"]) == {"train", "valid", "test"}
    for row in manifest.itertuples():
        audio, rate = sf.read(out / row.audio_path)
        assert rate == 16000 and audio.ndim == 1 and len(audio) == 16000
        assert load_npz(out / row.feature_path)["f0_hz"].shape == (125,)


def test_balance_report_and_equal_sampling(imported):
    out, manifest, _ = imported
    balance = pd.read_csv(out / "balance.csv").set_index("instrument")
    assert balance.loc["violin", "minutes"] > 2.5 * balance.loc["flute", "minutes"]
    assert balance["below_minimum"].all()
    assert balance.loc["violin", "pitch_p05"].startswith(("G4", "F#4", "G#4"))
    assert (out / "balance.png").stat().st_size > 10_000
    dm = CorpusDataModule(corpus_dir=out, instruments="all", batch_size=1, crop_seconds=0.5)
    dm.setup()
    counts = np.zeros(2)
    loader = dm.train_dataloader()  # one loader, as in training: its sampler moves on per epoch
    for _ in range(30):
        for b in loader:
            counts[int(b["instrument_id"][0])] += 1
    assert abs(counts[0] / counts.sum() - 0.5) < 0.1


def test_cap_policy_and_nothing_usable(messy: Path, tmp_path: Path):
    s = ImportSettings(example_seconds=1.0, balance="cap")
    manifest, _ = import_folder(messy, tmp_path / "capped", s, FeatureSettings(), progress=False)
    train = manifest[manifest.split == "train"].groupby("instrument").size()
    assert train["violin"] == train["flute"]
    bad = tmp_path / "bad"
    (bad / "oboe").mkdir(parents=True)
    (bad / "oboe" / "x.wav").write_bytes(b"nope")
    with pytest.raises(
        DDSPMorphError, match=r"nothing usable to import \(x.wav: cannot read audio"
    ):
        import_folder(bad, tmp_path / "c2", s, FeatureSettings(), progress=False)


def test_silence_splits_regions():
    s = ImportSettings()
    x = tone(3.0, 16000, 440.0, gaps=[(1.0, 1.5)])
    regions = sounding_regions(x, s)
    assert len(regions) == 2
    assert abs(regions[0][1] / 16000 - 1.0) < 0.02 and abs(regions[1][0] / 16000 - 1.5) < 0.02


@pytest.mark.slow
def test_killed_import_resumes_to_the_same_manifest(messy: Path, imported, tmp_path: Path):
    out = tmp_path / "data" / "corpus" / "messy"
    cmd = [
        sys.executable,
        "-m",
        "ddsp_morph.prepare",
        f"paths.data_dir={tmp_path / 'data'}",
        f"data.source.dir={messy}",
        "data.corpus.name=messy",
        "data.example_seconds=1.0",
        f"hydra.run.dir={tmp_path / 'log'}",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "features").rglob("*.npz"))) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-way through the features
    proc.wait()
    assert not (out / "balance.csv").exists()
    # A truncated cache entry and a damaged example are detected and redone.
    feat = next((out / "features").rglob("*.npz"))
    feat.write_bytes(feat.read_bytes()[:40])
    wav = next((out / "audio" / "flute").glob("*.wav"))
    wav.write_bytes(wav.read_bytes()[:1000])
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = pd.read_csv(out / "manifest.csv")
    reference = pd.read_csv(imported[0] / "manifest.csv")
    pd.testing.assert_frame_equal(resumed, reference)
    assert sf.read(wav)[0].shape == (16000,)
    shutil.rmtree(tmp_path / "data")


def test_identical_audio_stays_in_one_split_and_other_files_do_not_move(tmp_path: Path):
    from ddsp_morph.data.importer import assign_file_splits, duplicate_groups

    shas = {f"take{i}.wav": f"{i:064x}" for i in range(40)}
    shas["copy_of_take7.wav"] = shas["take7.wav"]
    splits = assign_file_splits(shas, {"valid": 0.1, "test": 0.1}, "violin")
    assert splits["copy_of_take7.wav"] == splits["take7.wav"]
    assert set(splits.values()) == {"train", "valid", "test"}
    assert duplicate_groups(shas) == [["copy_of_take7.wav", "take7.wav"]]
    more = dict(shas, **{f"new{i}.wav": f"{1000 + i:064x}" for i in range(5)})
    earlier = {shas[f]: name for f, name in splits.items()}  # what an import records
    after = assign_file_splits(more, {"valid": 0.1, "test": 0.1}, "violin", fixed=earlier)
    assert {f: after[f] for f in shas} == splits  # adding files moved none of the others
    # a copy under another name, imported: one split for both, reported in corpus.json
    src = tmp_path / "recs" / "violin"
    src.mkdir(parents=True)
    for i, f0 in enumerate((392.0, 440.0, 494.0, 523.0)):
        sf.write(src / f"{i}.wav", tone(1.2, 16000, f0), 16000)
    shutil.copy(src / "2.wav", src / "2_copy.wav")
    out = tmp_path / "corpus"
    manifest, _ = import_folder(tmp_path / "recs", out, SETTINGS, FeatureSettings(), progress=False)
    by_file = manifest.groupby(manifest["source_file"].map(lambda p: Path(p).name))["split"]
    assert by_file.nunique().max() == 1
    assert by_file.first()["2.wav"] == by_file.first()["2_copy.wav"]
    dup = json.loads((out / "corpus.json").read_text())["duplicates"]
    assert [Path(f).name for f in dup[0]["files"]] == ["2.wav", "2_copy.wav"]


def test_another_folder_under_an_existing_corpus_name_is_refused(tmp_path: Path):
    first, second = tmp_path / "a" / "rec_one", tmp_path / "b" / "rec_one"
    for root, f0 in ((first, 440.0), (second, 330.0)):
        (root / "violin").mkdir(parents=True)
        for i in range(3):
            sf.write(root / "violin" / f"{i}.wav", tone(1.2, 16000, f0 + 20 * i), 16000)
    out = tmp_path / "corpus" / "rec_one"
    import_folder(first, out, SETTINGS, FeatureSettings(), progress=False)
    manifest = (out / "manifest.csv").read_bytes()
    with pytest.raises(DDSPMorphError) as e:
        import_folder(second, out, SETTINGS, FeatureSettings(), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(first) in msg and str(second) in msg
    assert "data.corpus.name=" in msg
    assert (out / "manifest.csv").read_bytes() == manifest  # nothing replaced
    import_folder(first, out, SETTINGS, FeatureSettings(), progress=False)  # the same: resumes


def test_folder_names_people_use_import_through_make_data(tmp_path: Path):
    """Spaces, commas, accents and a quote in the folder name: `make data SOURCE=<folder>`
    passes it as --source, which becomes quoted Hydra overrides."""
    dry = subprocess.run(
        ["make", "-n", "data", "SOURCE=my recs, 2024"], cwd=REPO, capture_output=True, text=True
    )
    assert "--source 'my recs, 2024'" in dry.stdout
    src = tmp_path / "réc's ü, take 2"
    (src / "violin").mkdir(parents=True)
    for i in range(3):
        sf.write(src / "violin" / f"{i}.wav", tone(1.2, 16000, 440.0 + 30 * i), 16000)
    done = subprocess.run(
        [sys.executable, "-m", "ddsp_morph.prepare", "--source", str(src)]
        + [f"paths.data_dir={tmp_path / 'data'}", "data.example_seconds=1.0"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "data" / "corpus" / src.name
    assert (out / "manifest.csv").exists()
    assert f"as the corpus {src.name!r}" in done.stdout and "data.corpus.name=" in done.stdout
    assert json.loads((out / "corpus.json").read_text())["source"] == str(src)


def take_with_rests(rng: np.random.Generator, seconds: float, rate: int = 16000) -> np.ndarray:
    """A take like a player's: notes of 0.2-0.9 s, rests of 0.2-1.2 s between phrases."""
    x, t = np.zeros(int(seconds * rate), np.float32), 0.2
    while t < seconds - 0.5:
        dur = float(rng.uniform(0.2, 0.9))
        n = tone(dur, rate, float(rng.uniform(200, 700)), amp=float(rng.uniform(0.1, 0.4)))
        i = int(t * rate)
        x[i : i + len(n)] = n[: len(x) - i]
        t += dur + (float(rng.uniform(0.2, 1.2)) if rng.random() < 0.4 else 0.0)
    return x


def test_takes_with_rests_keep_their_sound(tmp_path: Path):
    rng = np.random.default_rng(3)
    root = tmp_path / "takes"
    for name in ("oboe", "horn"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            sf.write(root / name / f"take{i}.wav", take_with_rests(rng, rng.uniform(3, 6)), 16000)
    settings = ImportSettings(example_seconds=2.0, min_voiced_fraction=0.0)
    manifest, skipped = import_folder(
        root, tmp_path / "c", settings, FeatureSettings(), progress=False
    )
    assert not skipped
    balance = pd.read_csv(tmp_path / "c" / "balance.csv").set_index("instrument")
    for name in ("oboe", "horn"):
        # every sounding second reaches the corpus (only pieces under 0.5 s may be dropped)
        assert balance.loc[name, "kept_fraction"] >= 0.9
        total = sum(
            r1 - r0
            for f in (root / name).iterdir()
            for r0, r1 in sounding_regions(sf.read(f, dtype="float32")[0], settings)
        )
        assert balance.loc[name, "sound_minutes_total"] == pytest.approx(
            total / 16000 / 60, rel=1e-6
        )
    # the silence that pads a last piece is masked: the training crop starts in the audio,
    # and the loss does not see what the model makes there
    dm = CorpusDataModule(corpus_dir=tmp_path / "c", batch_size=2, crop_seconds=1.0)
    dm.setup()
    ds = dm.datasets["train"]
    padded = [i for i, it in enumerate(ds.items) if it["mask"].sum() < len(it["mask"])]
    assert padded
    for _ in range(20):
        assert ds[padded[0]]["mask"][0] == 1.0


def test_the_loss_ignores_the_padding():
    import torch

    from ddsp_morph.data.datamodule import audio_mask, sample_mask_frames

    mask = sample_mask_frames(valid_samples=3000, n_frames=40, hop_length=128)[None]
    target = torch.zeros(1, 40 * 128)
    target[0, :3000] = torch.sin(torch.arange(3000) * 0.1)
    pred = target.clone()
    pred[0, 3200:] = 0.5 * torch.randn(40 * 128 - 3200)  # noise only in the padding
    m = audio_mask(mask, target.shape[-1])
    assert int(m.sum()) == 24 * 128  # frames whose centre is in the audio: ceil(3000 / 128)
    from ddsp_morph.dsp.spectral import multiscale_spectral_loss

    assert float(multiscale_spectral_loss(pred * m, target * m)) == pytest.approx(0.0, abs=1e-4)
    assert float(multiscale_spectral_loss(pred, target)) > 1.0
