"""``python -m ddsp_morph.realtime`` (what ``make realtime`` runs).

python -m ddsp_morph.realtime                                 # latest run, live: audio out, MIDI in
python -m ddsp_morph.realtime --port "Keystation" --from violin --to flute
python -m ddsp_morph.realtime --virtual                       # a virtual MIDI input port
python -m ddsp_morph.realtime --midi-file in.mid --out out.wav   # headless, same code path
python -m ddsp_morph.realtime --input "USB Audio" --from violin --to flute   # your instrument in
python -m ddsp_morph.realtime --audio-file take.wav --out out.wav --sweep      # headless twin
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from ddsp_morph.config import conf_file, group_defaults
from ddsp_morph.errors import DDSPMorphError, exits_on_error, positive_int, require_f0_loudness
from ddsp_morph.realtime.audio_in import AudioInSettings
from ddsp_morph.realtime.headless import render_audio_to_wav, render_midi_to_wav
from ddsp_morph.realtime.live_audio import run_audio_in
from ddsp_morph.realtime.live_midi import run_live
from ddsp_morph.realtime.performer import PerformerSettings


def latest_run(runs_dir: Path) -> Path:
    from ddsp_morph.runs import finished_runs

    runs = finished_runs(runs_dir)
    if not runs:
        raise DDSPMorphError(
            f"{runs_dir}: no trained run yet; train one first with `make train` "
            "(or give --run <run dir>)"
        )
    return runs[-1]


@exits_on_error
def main(argv: list[str] | None = None) -> int:
    d = conf_file("realtime")  # the flags' defaults: conf/realtime.yaml
    ap = argparse.ArgumentParser(
        prog="python -m ddsp_morph.realtime", description="The DDSP Morph MIDI synth."
    )
    ap.add_argument(
        "--run", type=Path, help="a training run directory (default: the latest under --runs-dir)"
    )
    ap.add_argument("--runs-dir", type=Path, default=Path(d.runs_dir))
    ap.add_argument("--checkpoint", default=d.checkpoint)
    ap.add_argument("--midi-file", type=Path, help="headless: render this MIDI file")
    ap.add_argument(
        "--out", type=Path, help="headless: the wav to write (a spectrogram PNG beside it)"
    )
    ap.add_argument("--port", help="MIDI input port (a part of its name)")
    ap.add_argument("--virtual", action="store_true", help="open a virtual MIDI input port")
    ap.add_argument("--from", dest="source", help="instrument at morph CC = 0")
    ap.add_argument("--to", dest="target", help="instrument at morph CC = 127")
    ap.add_argument("--path", default=group_defaults("morph").path, choices=["slerp", "linear"])
    ap.add_argument(
        "--no-even",
        action="store_true",
        help="CC1 moves z evenly rather than the timbre (the run's stored speeds)",
    )
    ap.add_argument(
        "--through",
        default="",
        help="a morph path through several instruments, comma-separated "
        "(e.g. violin,flute,trumpet): CC1 travels the whole chain",
    )
    ap.add_argument("--frames-per-block", type=int, default=d.frames_per_block)
    ap.add_argument("--voices", type=int, default=d.voices, help="polyphony: voices (1: mono)")
    ap.add_argument(
        "--mpe", action="store_true", help="MPE lower zone: per-note bend, CC74 timbre, pressure"
    )
    ap.add_argument(
        "--split", help="NOTE:LOW,HIGH, e.g. 60:violin,flute: violin below middle C, flute from it"
    )
    ap.add_argument("--layer", help="A,B, e.g. violin,flute: every note plays both")
    ap.add_argument(
        "--engine",
        default=d.engine,
        choices=["fast", "torch"],
        help="fast: compiled block (default); torch: the reference StreamingEngine",
    )
    ap.add_argument(
        "--weights",
        default=d.weights,
        choices=["float32", "int16", "int8"],
        help="the fast engine's decoder weights, one scale per row for the integer ones "
        "(int16: ~90 dB SNR against float32, half the memory traffic; int8: ~50 dB, a quarter)",
    )
    ap.add_argument(
        "--activations",
        default=d.activations,
        choices=["auto", "float32", "int16"],
        help="polyphonic fast engine: the decoder's activations; int16 (with int16 weights) "
        "sums int16 products exactly in int32, twice the multiply-adds per instruction of "
        "float32 with AVX-512 VNNI (auto: int16 where the CPU has AVX-512 BW)",
    )
    ap.add_argument("--device-rate", type=int, default=d.device_rate)
    ap.add_argument("--device", default=d.device, help="sounddevice output device")
    ap.add_argument("--osc-host", default=d.osc_host)
    ap.add_argument("--osc-port", type=int, default=d.osc_port)
    ap.add_argument("--seconds", type=float, default=None, help="live: stop after this long")
    audio = ap.add_argument_group("audio in (your instrument drives the model)")
    audio.add_argument("--input", help="live: an input device (a part of its name, or its index)")
    audio.add_argument(
        "--input-channels",
        type=int,
        default=d.input_channels,
        help="channels to open (mixed to mono)",
    )
    audio.add_argument(
        "--audio-file", type=Path, help="headless: play this recording through the model"
    )
    audio.add_argument(
        "--sweep", action="store_true", help="headless: CC1 from 0 to 127 across the file"
    )
    audio.add_argument(
        "--morph", type=float, default=None, help="headless: a fixed morph in [0, 1]"
    )
    audio.add_argument("--tracker", default=d.tracker, choices=["yin", "pesto"])
    audio.add_argument(
        "--gain-db", type=float, default=d.gain_db, help="added to the mapped input level"
    )
    audio.add_argument("--no-auto-gain", action="store_true", help="keep the input level as it is")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one thread: per-block work is small, thread hand-offs cost more
    from ddsp_morph.runs import load_run

    positive_int(args.frames_per_block, "--frames-per-block", high=64)
    positive_int(args.device_rate, "--device-rate", low=8000, high=384000)
    if args.seconds is not None and not args.seconds > 0:
        raise DDSPMorphError(f"--seconds: expected a duration > 0, got {args.seconds}")
    if args.activations == "int16" and args.weights != "int16":
        raise DDSPMorphError(f"--activations int16: needs --weights int16, got {args.weights}")
    run = load_run(args.run or latest_run(args.runs_dir), checkpoint=args.checkpoint)
    require_f0_loudness(run.model, run.run_dir)
    split = layer = None
    if args.split:
        split, pair = parse_split(args.split)
        args.source, args.target = pair
    if args.layer:
        args.source, args.target = parse_pair(args.layer, "--layer")
        layer = True
    s = PerformerSettings(
        frames_per_block=args.frames_per_block,
        device_rate=args.device_rate,
        source=args.source,
        target=args.target,
        path=args.path,
        even=not args.no_even,
        through=tuple(n.strip() for n in args.through.split(",") if n.strip()),
        engine=args.engine,
        weights=args.weights,
        activations=args.activations,
        voices=positive_int(args.voices, "--voices", high=64),
        mpe=args.mpe,
        split=split,
        layer=bool(layer),
    )
    if (s.split is not None or s.layer) and s.voices == 1:
        s = replace(s, voices=8)  # a split or a layer is polyphonic
    audio_in = AudioInSettings(
        tracker=args.tracker, gain_db=args.gain_db, auto_gain=not args.no_auto_gain
    )
    if args.morph is not None and not 0.0 <= args.morph <= 1.0:
        raise DDSPMorphError(f"--morph: expected a value in [0, 1], got {args.morph}")
    if args.audio_file is not None:
        if args.out is None:
            raise DDSPMorphError("--audio-file needs --out <wav>")
        stats = render_audio_to_wav(
            run, args.audio_file, args.out, s, audio_in, sweep=args.sweep, morph=args.morph,
            midi_path=args.midi_file,
        )  # fmt: skip
        print(json.dumps(stats, indent=2))
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
        return 0
    if args.input is not None:
        run_audio_in(
            run, s, audio_in, device_in=args.input, channels=args.input_channels,
            device_out=args.device, osc_host=args.osc_host, osc_port=args.osc_port,
            port=args.port, seconds=args.seconds,
        )  # fmt: skip
        return 0
    if args.midi_file is not None:
        if args.out is None:
            raise DDSPMorphError("--midi-file needs --out <wav>")
        stats = render_midi_to_wav(run, args.midi_file, args.out, s)
        print(json.dumps(stats, indent=2))
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
        return 0
    if args.engine == "fast":
        print(
            "building the compiled engine (the first run on a machine compiles it, ~20 s; "
            "cached after)",
            file=sys.stderr,
        )
    run_live(
        run,
        s,
        port=args.port,
        virtual=args.virtual,
        osc_host=args.osc_host,
        osc_port=args.osc_port,
        device=args.device,
        seconds=args.seconds,
    )
    return 0


def parse_pair(text: str, flag: str) -> tuple[str, str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) != 2:
        raise DDSPMorphError(f"{flag}: expected two instruments A,B, got {text!r}")
    return names[0], names[1]


def parse_split(text: str) -> tuple[int, tuple[str, str]]:
    """``60:violin,flute`` -> (60, ("violin", "flute"))."""
    note, _, pair = text.partition(":")
    if not note.strip().isdigit() or not 0 <= int(note) <= 127 or not pair:
        raise DDSPMorphError(
            f"--split: expected NOTE:LOW,HIGH such as 60:violin,flute, got {text!r}"
        )
    return int(note), parse_pair(pair, "--split")
