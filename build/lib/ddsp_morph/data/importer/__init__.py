"""Import a folder of recordings into a corpus: ``<source>/<instrument>/*.{wav,flac,ogg,mp3,aiff}``.

``scan`` finds the recordings, ``segment`` cuts each into examples, ``records`` keeps what a
resumed or extended import needs (per-file records, splits, duplicates), ``report`` writes the
balance, and ``folder.import_folder`` runs it all (its docstring tells the whole story)."""

from ddsp_morph.data.importer.folder import check_import, import_folder
from ddsp_morph.data.importer.records import (
    assign_file_splits,
    check_origin,
    closest_subset,
    duplicate_groups,
    named_takes,
)
from ddsp_morph.data.importer.scan import scan_source
from ddsp_morph.data.importer.segment import sounding_regions
from ddsp_morph.data.importer.settings import AUDIO_EXTENSIONS, ImportSettings

__all__ = [
    "AUDIO_EXTENSIONS",
    "ImportSettings",
    "assign_file_splits",
    "check_import",
    "check_origin",
    "closest_subset",
    "duplicate_groups",
    "import_folder",
    "named_takes",
    "scan_source",
    "sounding_regions",
]
