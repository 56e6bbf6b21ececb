"""Where a performance to render comes from: a corpus example, or a MIDI file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ddsp_morph.control.midi import MidiSettings, midi_to_controls
from ddsp_morph.errors import DDSPMorphError

log = logging.getLogger(__name__)


def corpus_midi_settings(corpus_dir: Path) -> MidiSettings:
    """MIDI settings whose loudness spans the corpus's: velocity 127 at its 95th percentile,
    silence 20 dB under its 5th. A run whose corpus is not here (a run copied to another
    machine, or started from another folder) plays with the default range, and says so."""
    path = Path(corpus_dir) / "stats.json"
    try:
        stats = json.loads(path.read_text())
        float(stats["loudness_db_p05"]), float(stats["loudness_db_p95"])
    except (OSError, ValueError, KeyError, TypeError):
        log.warning(
            "%s: not readable here; velocity maps to the default loudness range "
            "(run from the folder the run was trained in to use its corpus's)",
            path,
        )
        return MidiSettings()
    return MidiSettings(
        loudness_min_db=float(stats["loudness_db_p05"]) - 20.0,
        loudness_max_db=float(stats["loudness_db_p95"]),
    )


def load_source(run, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """A performance as model inputs: ``source`` is a corpus example id (its audio, f0 and
    loudness) or a .mid/.midi file (controls from the notes; loudness in the corpus's range).

    Returns:
        (item with f0_hz, loudness_db, periodicity [, audio, instrument_id], the instrument of
        the source or "midi").
    """
    from ddsp_morph.build import build_datamodule

    cfg = run.cfg
    hop, sr = int(cfg.data.hop_length), int(cfg.data.sample_rate)
    if source.lower().endswith((".mid", ".midi")):
        c = midi_to_controls(
            source, frame_rate=sr / hop, settings=corpus_midi_settings(Path(cfg.data.corpus_dir))
        )
        item = {
            "f0_hz": torch.from_numpy(c["f0_hz"]),
            "loudness_db": torch.from_numpy(c["loudness_db"]),
            "periodicity": torch.from_numpy(c["gate"]),
            "instrument_id": torch.tensor(0),
        }
        return item, "midi"
    dm = build_datamodule(cfg)
    dm.setup("test")
    for split in ("test", "valid", "train"):
        m = dm.manifests[split]
        hit = m.index[m["example_id"] == source]
        if len(hit):
            return dm.datasets[split].items[int(hit[0])], str(m.loc[hit[0], "instrument"])
    raise DDSPMorphError(
        f"source {source!r}: neither a MIDI file nor an example id of {dm.corpus_dir}"
    )
