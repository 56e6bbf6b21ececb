"""Live play from MIDI and OSC: the audio callback, the MIDI input, the OSC inbox."""

from __future__ import annotations

import time

import numpy as np

from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.realtime.performer import Performer, PerformerSettings


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
    from ddsp_morph.realtime.poly import performer_for

    p = performer_for(run, s)
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


def _portaudio():
    try:
        import sounddevice as sd
    except OSError as e:
        raise DDSPMorphError(
            f"audio devices need PortAudio ({e}); on Debian: apt install libportaudio2. "
            "Headless rendering works without it: --audio-file in.wav --out out.wav"
        ) from e
    return sd
