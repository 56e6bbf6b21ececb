"""The play page's server: one page and a WebSocket on 127.0.0.1, the shared synth behind it,
and its audio going to the sound card (sounddevice) or, without one, to a wav at real-time pace.

WebSocket messages from a page (JSON): ``note_on {note, velocity}``, ``note_off {note}``,
``sustain {on}``, ``pad {x, y}`` (-1..1), ``path {from, to, morph}``, ``run {name}`` (switch to
another run under the runs folder), ``record {on}``. To the pages: ``hello`` (the runs, the
current run, its timbre map), ``frame`` (about 20 a second: a spectrogram column, the level,
f0, loudness, the timbre position, ignored messages), ``recorded {url}``, ``notice {text}``."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from ddsp_morph.errors import DDSPMorphError
from ddsp_morph.realtime.performer import Performer, PerformerSettings
from ddsp_morph.realtime.play.session import Pacer, PlaySession
from ddsp_morph.realtime.play.timbre_map import TimbreMap
from ddsp_morph.realtime.recording import StreamingWav

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
FRAMES_PER_SECOND = 20


def list_runs(runs_dir: Path) -> list[str]:
    """Run folders under ``runs_dir`` that hold a finished checkpoint, newest first."""
    from ddsp_morph.runs import finished_runs

    return [r.name for r in reversed(finished_runs(runs_dir))]


def open_session(run_dir: Path, settings: PerformerSettings) -> PlaySession:
    """A run loaded for play: the performer and the timbre map (its test clips as dots)."""
    from ddsp_morph.build import build_datamodule
    from ddsp_morph.errors import require_f0_loudness
    from ddsp_morph.latent.summary import encode_dataset
    from ddsp_morph.runs import load_run

    run = load_run(run_dir, checkpoint="last")
    require_f0_loudness(run.model, run.run_dir)
    latent = run.extra.get("latent")
    timbre_map = None
    if run.model.encoder is not None and latent:
        clips, ids = None, None
        try:
            dm = build_datamodule(run.cfg)
            dm.setup("test")
            if len(dm.datasets["test"]):
                enc = encode_dataset(run.model, dm.datasets["test"])
                clips, ids = enc["mu"], enc["instrument_id"].tolist()
        except DDSPMorphError as e:  # the corpus moved: the map without its clips
            log.warning("%s: the test clips are not drawn (%s)", run_dir, e)
        timbre_map = TimbreMap(latent, clips, ids)
    names = timbre_map.names if timbre_map is not None else []
    s = replace(settings, source=names[0] if names else None, target=names[-1] if names else None)
    return PlaySession(Performer(run, s), timbre_map, run.run_dir.name)


class PlayServer:
    def __init__(
        self,
        run_dir: Path,
        runs_dir: Path,
        settings: PerformerSettings,
        *,
        audio: bool,
        out: Path | None,
        allow_remote: bool,
    ) -> None:
        self.runs_dir, self.settings = runs_dir, settings
        self.session = open_session(run_dir, settings)
        self.run_dir = run_dir
        self.rate = settings.device_rate
        self.allow_remote = allow_remote
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.take = StreamingWav(out, self.rate) if out is not None else None
        self.recording: tuple[StreamingWav, Path] | None = None
        self.audio = audio
        self.stream = None
        self.pacer: Pacer | None = None
        self.pages = 0
        self.sink_lock = threading.Lock()  # the audio thread writes, a page starts and stops

    # --- audio ---------------------------------------------------------------------------
    def sink(self, audio: np.ndarray) -> None:
        with self.sink_lock:
            if self.take is not None:
                self.take.write(audio)
            if self.recording is not None:
                self.recording[0].write(audio)

    def start_audio(self) -> None:
        if not self.audio:
            self.pacer = Pacer(lambda: self.session, self.rate, self.sink)
            self.pacer.start()
            return
        from ddsp_morph.realtime.live_midi import _portaudio

        sd = _portaudio()
        pending = np.zeros(0, np.float32)

        def callback(outdata, frames, time_info, status) -> None:
            nonlocal pending
            while len(pending) < frames:
                pending = np.concatenate([pending, self.session.next_block()])
            block, pending = pending[:frames], pending[frames:]
            outdata[:, 0] = block
            self.sink(block)

        self.stream = sd.OutputStream(
            samplerate=self.rate, channels=1, dtype="float32", callback=callback
        )
        self.stream.start()

    def stop_audio(self) -> None:
        if self.pacer is not None:
            self.pacer.close()
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
        if self.recording is not None:
            self.recording[0].close()
        if self.take is not None:
            self.take.close()
            events = [e.__dict__ for e in self.session.events]
            log_path = self.take.path.with_suffix(".events.json")
            log_path.write_text(json.dumps({"rate": self.rate, "events": events}, indent=1))

    # --- the page ------------------------------------------------------------------------
    def hello(self) -> dict:
        s = self.session
        return {
            "type": "hello",
            "run": s.run_name,
            "runs": list_runs(self.runs_dir),
            "map": s.map.describe() if s.map is not None else None,
            "rate": self.rate,
        }

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def take_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self.run_dir / "play" / name
        if "/" in name or not name.endswith(".wav") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Disposition": f"attachment; {name}"})

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=5.0)
        await ws.prepare(request)
        self.pages += 1
        page = f"page{self.pages}"
        self.sockets[page] = ws
        await ws.send_json(self.hello())
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    msg = json.loads(message.data)
                except ValueError:
                    self.session.malformed += 1
                    continue
                kind = msg.get("type") if isinstance(msg, dict) else None
                if kind == "run":
                    await self.switch_run(msg.get("name"))
                elif kind == "record":
                    await self.record(msg.get("on"))
                else:
                    self.session.handle(page, msg)
        finally:
            self.sockets.pop(page, None)
            self.session.release(page)
        return ws

    async def broadcast(self, payload: dict) -> None:
        for ws in list(self.sockets.values()):
            try:
                await ws.send_json(payload)
            except (ConnectionError, RuntimeError):
                pass

    async def frames(self, app: web.Application) -> None:
        while True:
            await asyncio.sleep(1.0 / FRAMES_PER_SECOND)
            if self.sockets:
                await self.broadcast(self.session.frame(self.rate))

    async def switch_run(self, name) -> None:
        if not isinstance(name, str) or name not in list_runs(self.runs_dir):
            self.session.malformed += 1
            return
        run_dir = self.runs_dir / name
        loop = asyncio.get_running_loop()
        try:
            session = await loop.run_in_executor(None, open_session, run_dir, self.settings)
        except DDSPMorphError as e:
            await self.broadcast({"type": "notice", "text": f"{name}: {e}"})
            return
        # one take, one log: the output's clock and the events go on across the switch
        session.events, session.samples_out = self.session.events, self.session.samples_out
        session._log("run", {"name": name})
        self.session, self.run_dir = session, run_dir
        await self.broadcast(self.hello())

    async def record(self, on) -> None:
        if on is True and self.recording is None:
            path = self.run_dir / "play" / time.strftime("take_%Y%m%d_%H%M%S.wav")
            with self.sink_lock:
                self.recording = (StreamingWav(path, self.rate), path)
        elif on is False and self.recording is not None:
            with self.sink_lock:
                wav, path = self.recording
                self.recording = None
                wav.close()
            await self.broadcast({"type": "recorded", "url": f"/take/{path.name}"})
        elif not isinstance(on, bool):
            self.session.malformed += 1

    @web.middleware
    async def loopback_only(self, request: web.Request, handler):
        if not self.allow_remote and request.remote not in LOOPBACK:
            raise web.HTTPForbidden(text="this synth serves this machine only (--host to share)")
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.loopback_only])
        app.router.add_get("/", self.index)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/take/{name}", self.take_file)
        app.router.add_static("/static/", STATIC)

        async def start_frames(app: web.Application):
            task = asyncio.create_task(self.frames(app))
            yield
            task.cancel()

        app.cleanup_ctx.append(start_frames)
        return app
