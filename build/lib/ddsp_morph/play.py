"""``python -m ddsp_morph.play`` (``make play``, ``ddsp-morph play``): play a run from a web page.

python -m ddsp_morph.play                          # the latest run; open http://127.0.0.1:8765/
python -m ddsp_morph.play --run runs/<run> --midi-port Keystation
python -m ddsp_morph.play --no-audio --out take.wav   # no sound card: the session into a wav
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ddsp_morph.config import conf_file
from ddsp_morph.errors import DDSPMorphError, exits_on_error, positive_int


def parser() -> argparse.ArgumentParser:
    d, r = conf_file("play"), conf_file("realtime")
    ap = argparse.ArgumentParser(
        prog="python -m ddsp_morph.play", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--run", type=Path, help="a run directory (default: the latest under --runs-dir)"
    )
    ap.add_argument("--runs-dir", type=Path, default=Path(d.runs_dir))
    ap.add_argument("--port", type=int, default=d.port, help="the page's port")
    ap.add_argument("--host", default=None, help=f"serve on this address (default {d.host} only)")
    ap.add_argument("--midi-port", default=d.midi_port, help="a MIDI keyboard beside the page")
    ap.add_argument(
        "--no-audio", action="store_true", help="no sound card: render at real-time pace"
    )
    ap.add_argument("--out", type=Path, help="the whole session into this wav (and .events.json)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    ap.add_argument("--engine", default=r.engine, choices=["fast", "torch"])
    ap.add_argument("--weights", default=r.weights, choices=["float32", "int16", "int8"])
    ap.add_argument("--device-rate", type=int, default=r.device_rate)
    return ap


@exits_on_error
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    from ddsp_morph.realtime.cli import latest_run
    from ddsp_morph.realtime.performer import PerformerSettings
    from ddsp_morph.realtime.play.server import PlayServer

    positive_int(args.port, "--port", high=65535)
    positive_int(args.device_rate, "--device-rate", low=8000, high=384000)
    if args.no_audio and args.out is None:
        raise DDSPMorphError("--no-audio needs --out <wav> (where the session goes)")
    if args.seconds is not None and not args.seconds > 0:
        raise DDSPMorphError(f"--seconds: expected a duration > 0, got {args.seconds}")
    host = args.host or conf_file("play").host
    import torch

    torch.set_num_threads(1)
    run_dir = Path(args.run) if args.run else latest_run(args.runs_dir)
    settings = PerformerSettings(
        device_rate=args.device_rate, engine=args.engine, weights=args.weights
    )
    server = PlayServer(
        run_dir,
        args.runs_dir if args.run is None else Path(run_dir).parent,
        settings,
        audio=not args.no_audio,
        out=args.out,
        allow_remote=args.host is not None,
    )
    inport = None
    if args.midi_port:
        from ddsp_morph.realtime.live_midi import open_midi_input

        inport = open_midi_input(args.midi_port, False, lambda m: server.session.handle_midi(m))
    if args.host is not None and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"WARNING: serving on {host}:{args.port}: anyone who can reach this machine can play "
            "this synth and switch its runs",
            file=sys.stderr,
        )
    server.start_audio()
    try:
        asyncio.run(serve(server.app(), host, args.port, args.seconds))
    except KeyboardInterrupt:
        pass
    finally:
        server.stop_audio()
        if inport is not None:
            inport.close()
    return 0


async def serve(app, host: str, port: int, seconds: float | None) -> None:
    import signal

    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        raise DDSPMorphError(f"--port {port}: cannot serve on {host} ({e.strerror})") from None
    shown = "127.0.0.1" if host in ("127.0.0.1", "localhost") else host
    print(f"play: http://{shown}:{port}/", flush=True)  # once it listens
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
    await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
