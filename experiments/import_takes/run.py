"""A folder of takes like a player's, imported as a user would: kept fraction and import time.

    python experiments/import_takes/run.py [--minutes 1.67] [--instruments ...] [--out DIR]

Renders <out>/takes/<instrument>/take_NNN.wav: phrases of 4-12 s (the default corpus's phrase
generator, with extra rests of 0.3-1.5 s between segments), from the SoundFont the corpus
uses, then times ``python -m ddsp_morph.prepare --source <out>/takes`` into a corpus named
``takes_bench`` and prints balance.csv (kept / total minutes of sound per instrument).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ddsp_morph.data.io import save_wav
from ddsp_morph.data.phrases import CONTROL_RATE, INSTRUMENTS, generate_phrase
from ddsp_morph.data.render import PhraseRenderer, resolve_soundfont

NINE = [
    "violin",
    "cello",
    "flute",
    "trumpet",
    "clarinet",
    "oboe",
    "alto_sax",
    "french_horn",
    "bassoon",
]


def take(rng: np.random.Generator, spec: dict, renderer: PhraseRenderer) -> np.ndarray:
    seconds = float(rng.uniform(4.0, 12.0))
    phrase = generate_phrase(rng, low=spec["low"], high=spec["high"], seconds=seconds)
    # players breathe: open a rest of 0.3-1.5 s after about a third of the notes
    shift = 0.0
    for note in phrase.notes:
        note.start_s += shift
        note.end_s += shift
        if rng.random() < 0.3:
            shift += float(rng.uniform(0.3, 1.5))
    phrase.notes = [n for n in phrase.notes if n.end_s < seconds - 0.2]
    n = int(round(seconds * CONTROL_RATE))
    phrase.bend_semitones = np.zeros(n)
    phrase.expression = np.full(n, 100.0)
    return renderer.render(phrase, hop_length=128).audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=100 / 60, help="per instrument")
    ap.add_argument("--instruments", nargs="*", default=NINE)
    ap.add_argument("--out", type=Path, default=Path("data/import_takes"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sf = resolve_soundfont("auto")
    folder = args.out / "takes"
    total = 0.0
    for instrument in args.instruments:
        spec = INSTRUMENTS[instrument]
        renderer = PhraseRenderer(sf, spec["program"], sample_rate=16000, render_rate=48000)
        rng = np.random.default_rng([args.seed, list(INSTRUMENTS).index(instrument)])
        seconds, i = 0.0, 0
        while seconds < args.minutes * 60:
            audio = take(rng, spec, renderer)
            save_wav(folder / instrument / f"take_{i:03d}.wav", audio, 16000)
            seconds += len(audio) / 16000
            i += 1
        total += seconds
    print(f"rendered {total / 60:.1f} min of takes into {folder} ({sf.name})", flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ddsp_morph.prepare",
            "--source",
            str(folder),
            "data.corpus.name=takes_bench",
        ],
        check=True,
    )
    wall = time.perf_counter() - t0
    balance = pd.read_csv(Path("data/corpus/takes_bench/balance.csv"))
    print(f"import wall time: {wall:.0f} s for {total / 60:.1f} min of audio")
    print(
        balance[
            ["instrument", "sound_minutes_total", "sound_minutes_kept", "kept_fraction", "minutes"]
        ]
        .round(3)
        .to_string(index=False)
    )


if __name__ == "__main__":
    main()
