"""What an import is set to do: the file types it reads and the settings of its cut."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from ddsp_morph.errors import ConfigError

log = logging.getLogger(__name__)


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


RECORD_VERSION = 2  # v2: stretches joined across rests, last piece padded


@dataclass
class ImportSettings:
    sample_rate: int = 16000
    hop_length: int = 128
    example_seconds: float = 4.0
    silence_db: float = -45.0  # frames quieter than this (dB re the file's peak) are silence
    min_silence_seconds: float = 0.3  # a silence at least this long is a rest between stretches
    max_rest_seconds: float = 0.5  # rests are kept up to this long when stretches are joined
    min_piece_seconds: float = 0.5  # a last piece shorter than this is not padded into an example
    clip_level: float = 0.999  # |x| at or above this counts as a clipped sample
    max_clipped_fraction: float = 0.001  # examples with more clipped samples are dropped
    min_voiced_fraction: float = 0.3  # examples with fewer voiced frames are dropped
    voiced_threshold: float = 0.5  # CREPE periodicity for "voiced"
    balance: str = "equal"  # equal: sample instruments equally; cap: cut train at the smallest
    min_minutes_warning: float = 5.0
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1}
    )
    # takes the user holds out by name: glob patterns on <instrument>/<path in its folder>, or
    # on the file name alone when the pattern has no '/'
    test_takes: list[str] = field(default_factory=list)
    valid_takes: list[str] = field(default_factory=list)

    def identity(self) -> dict:
        """The settings that decide what the import writes: a corpus imported with others is
        another corpus (the warning threshold only changes a report)."""
        out = asdict(self)
        out.pop("min_minutes_warning")
        return out

    def validate(self) -> None:
        if self.balance not in ("equal", "cap"):
            raise ConfigError(
                f"data.source.balance: expected 'equal' or 'cap', got {self.balance!r}"
            )
        if self.example_seconds <= 0:
            raise ConfigError(f"data.example_seconds: must be > 0, got {self.example_seconds}")
        if self.max_rest_seconds < 0:
            raise ConfigError(
                f"data.source.max_rest_seconds: must be >= 0, got {self.max_rest_seconds}"
            )
        if not 0 < self.min_piece_seconds <= self.example_seconds:
            raise ConfigError(
                f"data.source.min_piece_seconds: must be in (0, example_seconds="
                f"{self.example_seconds:g}], got {self.min_piece_seconds}"
            )
