import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ddsp_morph.data.corpus import CorpusSettings, build_corpus, extract_corpus_features
from ddsp_morph.data.features import FeatureSettings, cached_features
from ddsp_morph.data.io import load_npz, read_audio, sha256_file
from ddsp_morph.errors import AudioFileError, ConfigError, DDSPMorphError

from .conftest import TINY


def test_manifest_records_instrument_split_and_soundfont(tiny_corpus: Path):
    m = pd.read_csv(tiny_corpus / "manifest.csv")
    assert len(m) == 2 * 3 * 2
    assert set(m.instrument) == {"violin", "flute"}
    assert set(m.split) == {"train", "valid", "test"}
    assert m.soundfont.nunique() == 1 and m.soundfont_sha256.str.len().eq(64).all()
    # balanced: the same audio per instrument
    assert m.groupby("instrument").n_samples.sum().nunique() == 1
    # no phrase on two sides of a split
    assert (m.groupby("phrase_id").split.nunique() == 1).all()
    for row in m.itertuples():
        audio, rate = read_audio(tiny_corpus / row.audio_path)
        assert rate == 16000 and len(audio) == row.n_samples
        truth = load_npz(tiny_corpus / row.truth_path)
        assert set(truth) == {"f0_hz", "voiced", "velocity", "expression"}
        assert len(truth["f0_hz"]) == row.n_samples // 128


def test_ground_truth_f0_is_real(tiny_corpus: Path):
    """f0 re-estimated by CREPE from the rendered audio matches the renderer's truth."""
    m = pd.read_csv(tiny_corpus / "manifest.csv")
    errors = []
    for row in m.itertuples():
        truth, feats = (
            load_npz(tiny_corpus / row.truth_path),
            load_npz(tiny_corpus / row.feature_path),
        )
        voiced = truth["voiced"].astype(bool)
        errors.append(1200 * np.abs(np.log2(feats["f0_hz"][voiced] / truth["f0_hz"][voiced])))
    cents = np.concatenate(errors)
    assert len(cents) > 500
    assert (cents < 50).mean() >= 0.9


def test_dynamics_truth_follows_loudness(tiny_corpus: Path):
    m = pd.read_csv(tiny_corpus / "manifest.csv")
    voiced_ld, unvoiced_ld = [], []
    for row in m.itertuples():
        truth, feats = (
            load_npz(tiny_corpus / row.truth_path),
            load_npz(tiny_corpus / row.feature_path),
        )
        v = truth["voiced"].astype(bool)
        voiced_ld.append(feats["loudness_db"][v])
        unvoiced_ld.append(feats["loudness_db"][~v])
    assert np.median(np.concatenate(voiced_ld)) > np.median(np.concatenate(unvoiced_ld)) + 10


def test_rendering_is_deterministic(tmp_path: Path, tiny_corpus: Path):
    other = tmp_path / "again"
    build_corpus(TINY, other, progress=False)
    m = pd.read_csv(other / "manifest.csv")
    for row in m.itertuples():
        assert sha256_file(other / row.audio_path) == sha256_file(tiny_corpus / row.audio_path)


def test_rebuild_reuses_and_refuses_other_settings(tmp_path: Path, tiny_corpus: Path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy)
    wav = copy / pd.read_csv(copy / "manifest.csv").audio_path[0]
    before = wav.stat().st_mtime_ns
    build_corpus(TINY, copy, progress=False)
    assert wav.stat().st_mtime_ns == before
    other = CorpusSettings(**{**TINY.__dict__, "seed": 1})
    with pytest.raises(DDSPMorphError, match="made with other settings \\(seed\\)"):
        build_corpus(other, copy, progress=False)


def test_interrupted_build_resumes(tmp_path: Path, tiny_corpus: Path):
    """A build killed before its manifest: the rerun renders only what is missing."""
    root = tmp_path / "partial"
    shutil.copytree(tiny_corpus, root)
    m = pd.read_csv(root / "manifest.csv")
    (root / "manifest.csv").unlink()
    victim = root / m.audio_path[3]
    victim.unlink()
    keep = root / m.audio_path[0]
    before = keep.stat().st_mtime_ns
    build_corpus(TINY, root, progress=False)
    assert victim.exists() and keep.stat().st_mtime_ns == before
    assert sha256_file(victim) == sha256_file(tiny_corpus / m.audio_path[3])


def test_missing_soundfont_is_one_line(tmp_path: Path):
    s = CorpusSettings(**{**TINY.__dict__, "soundfont": str(tmp_path / "nope.sf2")})
    with pytest.raises(DDSPMorphError) as err:
        build_corpus(s, tmp_path / "c", progress=False)
    assert "SoundFont not found" in str(err.value) and "nope.sf2" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_instrument_lists_known_ones(tmp_path: Path):
    s = CorpusSettings(**{**TINY.__dict__, "instruments": ("violin", "kazoo")})
    with pytest.raises(ConfigError, match="unknown \\['kazoo'\\]; known: .*violin"):
        build_corpus(s, tmp_path / "c", progress=False)


def test_unreadable_audio_is_skipped_and_reported_and_cache_kept(tmp_path: Path, tiny_corpus: Path):
    root = tmp_path / "broken"
    shutil.copytree(tiny_corpus, root)
    m = pd.read_csv(root / "manifest.csv")
    bad = root / m.audio_path[1]
    bad.write_bytes(b"RIFF not really a wav")
    good_cache = root / m.feature_path[0]
    before = good_cache.read_bytes()
    usable, skipped = extract_corpus_features(root, FeatureSettings(), progress=False)
    assert len(usable) == len(m) - 1
    assert [p for p, _ in skipped] == [str(bad)]
    assert str(bad) in skipped[0][1] and "cannot read audio" in skipped[0][1]
    assert good_cache.read_bytes() == before  # nothing cached was lost or rewritten
    assert json.loads((root / "stats.json").read_text())["loudness_db_std"] > 0


def test_truncated_cache_entry_is_redone(tmp_path: Path, tiny_corpus: Path):
    m = pd.read_csv(tiny_corpus / "manifest.csv")
    audio, _ = read_audio(tiny_corpus / m.audio_path[0])
    entry = tmp_path / "f.npz"
    entry.write_bytes((tiny_corpus / m.feature_path[0]).read_bytes()[:100])  # a half-written file
    feats, cached = cached_features(audio, entry, FeatureSettings())
    assert not cached and load_npz(entry) is not None
    again, cached = cached_features(audio, entry, FeatureSettings())
    assert cached and np.array_equal(again["f0_hz"], feats["f0_hz"])
    # other audio under the same name: stale, recomputed
    _, cached = cached_features(audio * 0.5, entry, FeatureSettings())
    assert not cached


def test_read_audio_errors_name_the_file(tmp_path: Path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"empty.wav: empty file \(0 bytes\)"):
        read_audio(empty)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    with pytest.raises(AudioFileError, match="garbage.wav: cannot read audio"):
        read_audio(garbage)
