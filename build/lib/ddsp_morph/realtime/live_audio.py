"""Live play from your instrument: an input device drives the model through the follower."""

from __future__ import annotations

import time

import numpy as np

from ddsp_morph.errors import DDSPMorphError, positive_int
from ddsp_morph.realtime.audio_in import AudioInSettings, AudioPerformer
from ddsp_morph.realtime.live_midi import _portaudio, control_inbox, drain_controls, open_midi_input
from ddsp_morph.realtime.performer import PerformerSettings


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
