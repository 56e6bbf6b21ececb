"""The LightningDataModule over a corpus: in-memory examples, instruments sampled in balance."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from ddsp_morph.data.augment import GainChange, PitchShift, shifted_crop, with_gain
from ddsp_morph.data.features import CONTEXT_FEATURES, context_path
from ddsp_morph.data.io import load_npz, read_audio
from ddsp_morph.data.origin import IMPORTED, read_origin
from ddsp_morph.dsp.core import hz_to_midi
from ddsp_morph.dsp.loudness import sounding_level
from ddsp_morph.errors import ConfigError, DDSPMorphError


class FrameDataset(Dataset):
    """Examples held in memory: audio [n_samples], frame-rate signals [n_frames, ...] (f0_hz,
    loudness_db, periodicity, centroid_hz, flatness_db, roughness, mfcc [n_frames, n_mfcc]).

    ``crop_frames``: when set, each item is a random crop of that many frames (training).
    ``mask`` [n_frames] (imported corpora): 1 where the example holds audio, 0 over the silence
    that pads a recording's last piece; a crop starts where it covers as much audio as it can.
    ``pitch_shift``: crops played faster or slower (``data.augment``); an example too short
    for a crop's shift is cropped unshifted. ``gain``: crops played louder or softer.
    """

    def __init__(
        self,
        items: list[dict[str, torch.Tensor]],
        *,
        hop_length: int,
        crop_frames: int | None = None,
        seed: int = 0,
        pitch_shift: PitchShift | None = None,
        gain: GainChange | None = None,
    ):
        self.items, self.hop_length, self.crop_frames = items, hop_length, crop_frames
        self.rng = np.random.default_rng(seed)
        self.pitch_shift, self.gain = pitch_shift, gain

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        crop = self._crop(self.items[i])
        if self.gain is not None and self.gain.active:
            crop = with_gain(crop, self.gain.draw_db(self.rng), n_mels=self.gain.n_mels)
        return crop

    def __len__(self) -> int:
        return len(self.items)

    def _crop(self, item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n_frames = item["f0_hz"].shape[0]
        if self.crop_frames is None or self.crop_frames >= n_frames:
            return item
        n_valid = int(item["mask"].sum()) if "mask" in item else n_frames
        shift = self.pitch_shift
        if shift is not None and shift.active:
            ratio = shift.draw_ratio(self.rng)
            span = shift.source_frames(self.crop_frames, ratio)
            if ratio != 1.0 and span <= n_frames:
                start = int(self.rng.integers(0, max(1, n_valid - span + 1)))
                return shifted_crop(
                    item, start, self.crop_frames, ratio, hop_length=self.hop_length, shift=shift
                )
        start = int(self.rng.integers(0, max(1, n_valid - self.crop_frames + 1)))
        out = {k: v for k, v in item.items() if v.ndim == 0}
        for k, v in item.items():
            if v.ndim and k != "audio":  # every frame-rate signal: [n_frames, ...]
                out[k] = v[start : start + self.crop_frames]
        h = self.hop_length
        out["audio"] = item["audio"][start * h : (start + self.crop_frames) * h]
        return out


def median_midi(item: dict[str, torch.Tensor], *, within_db: float = 30.0) -> float:
    """An example's register: the median MIDI pitch over its sounding, pitched frames (loudness
    within ``within_db`` of its loudest, f0 > 0, inside the mask where there is one); nan when
    no frame qualifies."""
    f0, loud = item["f0_hz"], item["loudness_db"]
    ok = (f0 > 0) & (loud > loud.max() - within_db)
    if "mask" in item:
        ok &= item["mask"] > 0
    if not ok.any():
        return float("nan")
    return float(np.median(hz_to_midi(f0[ok]).numpy()))


def sampling_weights(
    instrument_ids: np.ndarray,
    registers: np.ndarray | None = None,
    *,
    bin_semitones: float = 4.0,
    power: float = 0.5,
) -> np.ndarray:
    """Sampling weight per example: every instrument gets the same total. With ``registers``
    (each example's median MIDI pitch), an instrument's total is shared among its register bins
    (``bin_semitones`` wide) in proportion to count ** (1 - power): power 0 is proportional to
    the data, 1 gives every occupied bin the same share, so a rare high or low register is seen
    more often without being drawn as often as the bulk. An example with no register (nan)
    joins its instrument's most common bin."""
    ids = np.asarray(instrument_ids, int)
    n_instruments = len(np.unique(ids))
    w = 1.0 / np.bincount(ids)[ids] / n_instruments
    if not 0.0 <= power <= 1.0:
        raise ConfigError(f"data.register_power: expected a value in [0, 1], got {power}")
    if registers is None or power == 0:
        return w
    reg = np.asarray(registers, float)
    out = np.zeros(len(ids))
    for k in np.unique(ids):
        sel = np.flatnonzero(ids == k)
        r = reg[sel]
        bins = np.floor(r / bin_semitones)
        if np.isnan(bins).all():
            out[sel] = 1.0 / len(sel)
            continue
        values, counts = np.unique(bins[~np.isnan(bins)], return_counts=True)
        bins[np.isnan(bins)] = values[counts.argmax()]
        values, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
        share = counts ** (1.0 - power)
        share = share / share.sum()  # each bin's share of the instrument
        out[sel] = share[inverse] / counts[inverse]
    return out / n_instruments


def sample_mask_frames(valid_samples: int, n_frames: int, hop_length: int) -> torch.Tensor:
    """[n_frames] float: 1 on the frames that hold audio, 0 on the padding after it."""
    mask = torch.zeros(n_frames)
    mask[: -(-valid_samples // hop_length)] = 1.0
    return mask


def audio_mask(mask: torch.Tensor, n_samples: int) -> torch.Tensor:
    """A frame mask [..., n_frames] as a sample mask [..., n_samples] (hop = n_samples / n_frames)."""
    hop = n_samples // mask.shape[-1]
    return mask.repeat_interleave(hop, dim=-1)[..., :n_samples]


class CorpusDataModule(L.LightningDataModule):
    """Serves a corpus made by ``prepare`` (manifest.csv + cached features + stats.json).

    Args:
        feature_key, context_key: when given, every cached feature / context file must carry
            it (stale caches fail).
        corpus_dir: the corpus folder.
        instruments: the instruments to train on, or "all".
        balance: "equal" samples every instrument equally often (weights 1 / its count);
            "register" also evens out each instrument's registers (``sampling_weights``, with
            ``register_power``); "none" samples examples uniformly.
    """

    def __init__(
        self,
        *,
        corpus_dir: str | Path,
        instruments: Sequence[str] | str = "all",
        sample_rate: int = 16000,
        hop_length: int = 128,
        batch_size: int = 8,
        crop_seconds: float | None = None,
        num_workers: int = 0,
        balance: str = "equal",
        register_power: float = 0.5,
        seed: int = 0,
        feature_key: str | None = None,
        context_key: str | None = None,
        pitch_shift: PitchShift | None = None,
        gain: GainChange | None = None,
    ) -> None:
        super().__init__()
        self.pitch_shift, self.gain = pitch_shift, gain
        self.corpus_dir = Path(corpus_dir)
        self.feature_key, self.context_key = feature_key, context_key
        self.requested = instruments
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.batch_size, self.num_workers, self.balance, self.seed = (
            batch_size,
            num_workers,
            balance,
            seed,
        )
        self.register_power = float(register_power)
        self.crop_frames = (
            None if not crop_seconds else int(crop_seconds * sample_rate) // hop_length
        )
        self.datasets: dict[str, FrameDataset] = {}
        self.manifests: dict[str, pd.DataFrame] = {}
        self.instruments: list[str] = []
        self.stats: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        manifest_path = self.corpus_dir / "manifest.csv"
        if not manifest_path.exists():
            raise DDSPMorphError(f"{manifest_path}: no corpus here; run `make data` first")
        origin = read_origin(self.corpus_dir)
        if origin is not None and origin["kind"] == IMPORTED and not origin.get("complete"):
            raise DDSPMorphError(
                f"{self.corpus_dir}: the import of {origin.get('source')} did not finish; run "
                "`make data` again (it resumes) before training on it"
            )
        manifest = pd.read_csv(manifest_path)
        self.instruments = sorted(manifest["instrument"].unique())
        wanted = self.instruments if self.requested == "all" else list(self.requested)
        unknown = [i for i in wanted if i not in self.instruments]
        if unknown:
            raise ConfigError(
                f"data.train_instruments: {unknown} not in the corpus; known: {self.instruments}"
            )
        stats_path = self.corpus_dir / "stats.json"
        if not stats_path.exists():
            raise DDSPMorphError(f"{stats_path}: missing; run `make data` to extract features")
        self.stats = json.loads(stats_path.read_text())
        manifest = manifest[manifest["instrument"].isin(wanted)]
        for split in ("train", "valid", "test"):
            rows = manifest[manifest["split"] == split]
            self.manifests[split] = rows.reset_index(drop=True)
            items = [self._load(r) for r in rows.itertuples()]
            train = split == "train"
            self.datasets[split] = FrameDataset(
                items,
                hop_length=self.hop_length,
                crop_frames=self.crop_frames if train else None,
                seed=self.seed,
                pitch_shift=self.pitch_shift if train else None,
                gain=self.gain if train else None,
            )
        if not len(self.datasets["train"]):
            raise DDSPMorphError(f"{self.corpus_dir}: no training example for {wanted}")

    def examples(self) -> pd.DataFrame:
        """The examples served, one row each: example_id, instrument, split."""
        cols = ["example_id", "instrument", "split"]
        return pd.concat([self.manifests[s][cols] for s in ("train", "valid", "test")])

    def _load(self, row) -> dict[str, torch.Tensor]:
        audio, _ = read_audio(self.corpus_dir / row.audio_path, expected_rate=self.sample_rate)
        path = self.corpus_dir / row.feature_path
        feats = self._load_cached(path, "features", self.feature_key)
        ctx = self._load_cached(context_path(path), "context features", self.context_key)
        n_frames = len(feats["f0_hz"])
        item = {
            "audio": torch.from_numpy(audio[: n_frames * self.hop_length].copy()),
            "instrument_id": torch.tensor(self.instruments.index(row.instrument)),
        }
        for k in ("f0_hz", "loudness_db", "periodicity"):
            item[k] = torch.from_numpy(feats[k]).float()
        for k in CONTEXT_FEATURES:
            item[k] = torch.from_numpy(ctx[k][:n_frames]).float()
        valid = getattr(row, "valid_samples", None)
        if valid is not None and not pd.isna(valid):
            item["mask"] = sample_mask_frames(int(valid), n_frames, self.hop_length)
        # the example's level (model.loudness_reference=clip): its crops share it
        loud = item["loudness_db"][item["mask"] > 0] if "mask" in item else item["loudness_db"]
        item["sounding_db"] = sounding_level(loud[None])[0]
        return item

    @staticmethod
    def _load_cached(path: Path, what: str, key: str | None) -> dict:
        entry = load_npz(path)
        if entry is None:
            raise DDSPMorphError(f"{path}: {what} missing or unreadable; run `make data`")
        if key is not None and str(entry.get("settings")) != key:
            raise DDSPMorphError(
                f"{path}: {what} were computed with other settings "
                f"({entry.get('settings')} vs {key}); run `make data` to refresh them"
            )
        return entry

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        sampler = None
        if self.balance in ("equal", "register"):
            ids = np.array([int(it["instrument_id"]) for it in ds.items])
            registers = None
            if self.balance == "register":
                registers = np.array([median_midi(it) for it in ds.items])
            w = sampling_weights(ids, registers, power=self.register_power)
            weights = torch.from_numpy(w).double()
            sampler = WeightedRandomSampler(
                weights,
                num_samples=len(ds),
                replacement=True,
                generator=torch.Generator().manual_seed(self.seed),
            )
        elif self.balance != "none":
            raise ConfigError(
                f"data.sampler_balance: expected 'equal', 'register' or 'none', got {self.balance!r}"
            )
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=sampler is None,
            num_workers=self.num_workers,
            drop_last=len(ds) >= self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.datasets["valid"], batch_size=self.batch_size, num_workers=self.num_workers
        )

    def test_dataloader(self) -> DataLoader:
        return DataLoader(
            self.datasets["test"], batch_size=self.batch_size, num_workers=self.num_workers
        )
