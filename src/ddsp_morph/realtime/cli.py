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
import time
from pathlib import Path

import numpy as np

from ddsp_morph.config import group_defaults
from ddsp_morph.errors import DDSPMorphError, exits_on_error, positive_int, require_f0_loudness
from ddsp_morph.realtime.audio_in import AudioInSettings, AudioPerformer, render_audio_file
from ddsp_morph.realtime.performer import Performer, PerformerSettings, render_midi_file
from ddsp_morph.realtime.recording import SpectrogramSummary, StreamingWav


def latest_run(runs_dir: Path) -> Path:
    runs = sorted(p.parents[1] for p in runs_dir.glob("*/checkpoints/last.ckpt"))
    if not runs:
        raise DDSPMorphError(
            f"{runs_dir}: no trained run yet; train one first with `make train` "
            "(or give --run <run dir>)"
        )
    return runs[-1]


def open_midi_input(port: str | None, virtual: bool, callback):
    """The MIDI input (a port whose name contains ``port``, or a virtual one), or one line
    saying what is missing."""
    import mido

    try:
        if virtual:
            inport = mido.open_input("DDSP Morph", virtual=True, callback=callback)
        else:
            names = mido.get_input_names()
            chosen = [n for n in names if port is None or port.lower() in n.lower()]
            if not chosen:
                raise DDSPMorphError(
                    f"MIDI input {port!r}: not found; available: {names or 'none'} (or --virtual)"
                )
            inport = mido.open_input(chosen[0], callback=callback)
    except DDSPMorphError:
        raise
    except Exception as e:  # rtmidi: SystemError / RtMidiError without a MIDI subsystem
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DDSPMorphError(
            f"no MIDI input available ({type(e).__name__}: {first}); this machine needs a MIDI "
            "subsystem (Linux: the ALSA sequencer, /dev/snd/seq) — or render a file headless: "
            "--midi-file in.mid --out out.wav"
        ) from None
    return inport


def control_inbox(osc_host: str, osc_port: int):
    """A queue that MIDI callbacks and an OSC server (started here) fill; returns (inbox,
    server). The audio callback drains it with ``drain_controls`` once per block."""
    import queue
    import threading

    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    inbox: queue.SimpleQueue = queue.SimpleQueue()
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: inbox.put(("osc", address, args)))
    server = ThreadingOSCUDPServer((osc_host, osc_port), dispatcher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return inbox, server


def drain_controls(inbox, p: Performer) -> None:
    while not inbox.empty():
        item = inbox.get_nowait()
        if item[0] == "midi":
            p.controller.handle(item[1], p.t)
        else:
            p.controller.osc(item[1], *item[2])


def run_live(
    run,
    s: PerformerSettings,
    *,
    port: str | None,
    virtual: bool,
    osc_host: str,
    osc_port: int,
    device,
    seconds: float | None,
) -> None:
    try:
        import sounddevice as sd
    except OSError as e:
        raise DDSPMorphError(
            f"audio output needs PortAudio ({e}); on Debian: apt install libportaudio2. "
            "Headless rendering works without it: --midi-file in.mid --out out.wav"
        ) from e
    p = Performer(run, s)
    inbox, server = control_inbox(osc_host, osc_port)
    inport = open_midi_input(port, virtual, lambda m: inbox.put(("midi", m)))
    fifo = np.zeros(0, np.float32)
    xruns = 0

    def callback(outdata, frames, time_info, status) -> None:
        nonlocal fifo, xruns
        if status.output_underflow:
            xruns += 1
        drain_controls(inbox, p)
        while len(fifo) < frames:
            fifo = np.concatenate([fifo, p.next_block()])
        outdata[:, 0] = fifo[:frames]
        fifo = fifo[frames:]

    blocksize = int(round(p.block_size * s.device_rate / p.sample_rate))
    print(f"playing {run.run_dir} on MIDI {inport.name!r}, OSC {osc_host}:{osc_port}; Ctrl-C stops")
    start = time.time()
    with sd.OutputStream(
        samplerate=s.device_rate,
        blocksize=blocksize,
        channels=1,
        dtype="float32",
        callback=callback,
        latency="low",
        device=device,
    ) as stream:
        try:
            while seconds is None or time.time() - start < seconds:
                time.sleep(1.0)
                recent = p.compute_seconds[-200:]
                model_load = np.median(recent) / (p.block_size / p.sample_rate) if recent else 0.0
                print(
                    f"\rxruns {xruns}  stream cpu {stream.cpu_load:5.1%}  model {model_load:5.1%} of a block",
                    end="",
                    flush=True,
                )
        except KeyboardInterrupt:
            pass
    print()
    server.shutdown()
    inport.close()


@exits_on_error
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ddsp_morph.realtime", description="The DDSP Morph MIDI synth."
    )
    ap.add_argument(
        "--run", type=Path, help="a training run directory (default: the latest under --runs-dir)"
    )
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"))
    ap.add_argument("--checkpoint", default="last")
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
    ap.add_argument("--frames-per-block", type=int, default=1)
    ap.add_argument(
        "--engine",
        default="fast",
        choices=["fast", "torch"],
        help="fast: compiled block (default); torch: the reference StreamingEngine",
    )
    ap.add_argument(
        "--weights",
        default="int16",
        choices=["float32", "int16", "int8"],
        help="the fast engine's decoder weights, one scale per row for the integer ones "
        "(int16: ~90 dB SNR against float32, half the memory traffic; int8: ~50 dB, a quarter)",
    )
    ap.add_argument("--device-rate", type=int, default=48000)
    ap.add_argument("--device", default=None, help="sounddevice output device")
    ap.add_argument("--osc-host", default="127.0.0.1")
    ap.add_argument("--osc-port", type=int, default=9000)
    ap.add_argument("--seconds", type=float, default=None, help="live: stop after this long")
    audio = ap.add_argument_group("audio in (your instrument drives the model)")
    audio.add_argument("--input", help="live: an input device (a part of its name, or its index)")
    audio.add_argument(
        "--input-channels", type=int, default=1, help="channels to open (mixed to mono)"
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
    audio.add_argument("--tracker", default="yin", choices=["yin", "pesto"])
    audio.add_argument("--gain-db", type=float, default=0.0, help="added to the mapped input level")
    audio.add_argument("--no-auto-gain", action="store_true", help="keep the input level as it is")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one thread: per-block work is small, thread hand-offs cost more
    from ddsp_morph.runs import load_run

    positive_int(args.frames_per_block, "--frames-per-block", high=64)
    positive_int(args.device_rate, "--device-rate", low=8000, high=384000)
    if args.seconds is not None and not args.seconds > 0:
        raise DDSPMorphError(f"--seconds: expected a duration > 0, got {args.seconds}")
    run = load_run(args.run or latest_run(args.runs_dir), checkpoint=args.checkpoint)
    require_f0_loudness(run.model, run.run_dir)
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
    )
    audio_in = AudioInSettings(
        tracker=args.tracker, gain_db=args.gain_db, auto_gain=not args.no_auto_gain
    )
    if args.morph is not None and not 0.0 <= args.morph <= 1.0:
        raise DDSPMorphError(f"--morph: expected a value in [0, 1], got {args.morph}")
    if args.audio_file is not None:
        if args.out is None:
            raise DDSPMorphError("--audio-file needs --out <wav>")
        audio, stats = render_audio_file(
            run, args.audio_file, s, audio_in, sweep=args.sweep, morph=args.morph,
            midi_path=args.midi_file,
        )  # fmt: skip
        write_render(args.out, audio, s.device_rate, stats)
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
        wav = StreamingWav(args.out, s.device_rate)
        try:
            _, stats = render_midi_file(run, args.midi_file, s, sink=wav.write)
        except BaseException:
            wav.abort()
            raise
        wav.close()
        write_render(args.out, None, s.device_rate, stats, summary=wav.summary)
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


def _portaudio():
    try:
        import sounddevice as sd
    except OSError as e:
        raise DDSPMorphError(
            f"audio devices need PortAudio ({e}); on Debian: apt install libportaudio2. "
            "Headless rendering works without it: --audio-file in.wav --out out.wav"
        ) from e
    return sd


def pick_input_device(sd, wanted: str, channels: int, rate: int) -> int:
    """The input device whose name contains ``wanted`` (or whose index it is), checked for
    ``channels`` at ``rate``; or one line saying what is wrong."""
    devices = sd.query_devices()
    inputs = [(i, d) for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    names = [d["name"] for _, d in inputs]
    if wanted.isdigit():
        chosen = [(i, d) for i, d in inputs if i == int(wanted)]
    else:
        chosen = [(i, d) for i, d in inputs if wanted.lower() in d["name"].lower()]
    if not chosen:
        raise DDSPMorphError(f"input device {wanted!r}: not found; inputs: {names or 'none'}")
    index, dev = chosen[0]
    if channels > dev["max_input_channels"]:
        raise DDSPMorphError(
            f"input device {dev['name']!r}: has {dev['max_input_channels']} input channel(s), "
            f"--input-channels {channels} asked for more"
        )
    try:
        sd.check_input_settings(device=index, channels=channels, samplerate=rate, dtype="float32")
    except Exception as e:
        raise DDSPMorphError(
            f"input device {dev['name']!r}: refuses {rate} Hz x {channels} ch "
            f"({str(e).splitlines()[0]}); try --device-rate {int(dev['default_samplerate'])}"
        ) from None
    return index


def run_audio_in(
    run,
    s: PerformerSettings,
    audio_in: AudioInSettings,
    *,
    device_in: str,
    channels: int,
    device_out,
    osc_host: str,
    osc_port: int,
    port: str | None,
    seconds: float | None,
) -> None:
    """Live audio in: one duplex stream; each input block is tracked and synthesized in the
    same callback. CC1 (MIDI ``port`` if given) and OSC /morph move the timbre."""
    sd = _portaudio()
    positive_int(channels, "--input-channels", high=64)
    index = pick_input_device(sd, device_in, channels, s.device_rate)
    ap = AudioPerformer(run, s, audio_in, s.device_rate)
    p = ap.performer
    inbox, server = control_inbox(osc_host, osc_port)
    inport = (
        open_midi_input(port, False, lambda m: inbox.put(("midi", m))) if port is not None else None
    )
    fifo = np.zeros(0, np.float32)
    xruns = 0

    def callback(indata, outdata, frames, time_info, status) -> None:
        nonlocal fifo, xruns
        if status.input_overflow or status.output_underflow:
            xruns += 1
        drain_controls(inbox, p)
        for block in ap.process(indata.mean(axis=1)):
            fifo = np.concatenate([fifo, block])
        n = min(frames, len(fifo))
        outdata[:n, 0] = fifo[:n]
        outdata[n:, 0] = 0.0  # the first blocks, until the tracker has a hop
        fifo = fifo[n:]

    blocksize = int(round(p.block_size * s.device_rate / p.sample_rate))
    print(
        f"playing {run.run_dir} from input {device_in!r}, OSC {osc_host}:{osc_port}; Ctrl-C stops"
    )
    start = time.time()
    with sd.Stream(
        samplerate=s.device_rate,
        blocksize=blocksize,
        channels=(channels, 1),
        dtype="float32",
        callback=callback,
        latency="low",
        device=(index, device_out),
    ) as stream:
        try:
            while seconds is None or time.time() - start < seconds:
                time.sleep(1.0)
                print(
                    f"\rxruns {xruns}  stream cpu {stream.cpu_load:5.1%}  "
                    f"input gain {ap.follower.gain_db():+5.1f} dB",
                    end="",
                    flush=True,
                )
        except KeyboardInterrupt:
            pass
    print()
    server.shutdown()
    if inport is not None:
        inport.close()


def write_render(
    path: Path,
    audio: np.ndarray | None,
    rate: int,
    stats: dict,
    *,
    summary: SpectrogramSummary | None = None,
) -> None:
    """The wav (unless ``audio`` is None: already streamed), its stats JSON and its spectrogram
    PNG (from ``summary`` when given, of bounded size whatever the length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddsp_morph.data.io import save_json, save_wav

    if audio is not None:
        save_wav(path, audio, rate)
        summary = SpectrogramSummary()
        summary.push(audio)
    save_json(path.with_suffix(".json"), stats)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    image = summary.image()
    ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-80,
        vmax=max(float(image.max()) if image.size else 0.0, -79.0),
        extent=(0, summary.n_samples / rate, 0, rate / 2000),
    )
    ax.set_ylim(0, 8)
    ax.set_xlabel("s")
    ax.set_ylabel("kHz")
    ax.set_title(f"{path.name}: {stats.get('source')} → {stats.get('target')} (morph CC)")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=90)
    plt.close(fig)
