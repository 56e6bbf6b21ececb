"""The play page: the shared session, the server over a real WebSocket, and the page driven in a
real browser (chromium, headless), asserting on the audio it made."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ddsp_morph.realtime.play.timbre_map import SNAP_RADIUS, TimbreMap

from .conftest import REPO


def latent_of(centroids: dict[str, list[float]]) -> dict:
    c = np.asarray(list(centroids.values()))
    mean = c.mean(0)
    u, s, vt = np.linalg.svd(c - mean, full_matrices=False)
    return {
        "centroids": centroids,
        "pca_mean": mean.tolist(),
        "pca_components": vt[:2].tolist(),
        "pca_std": (s[:2] / np.sqrt(len(c))).tolist(),
    }


def test_the_page_ships_in_the_package_and_reaches_nothing_but_its_server():
    static = REPO / "src" / "ddsp_morph" / "realtime" / "play" / "static"
    files = {p.name: p.read_text() for p in static.iterdir()}
    assert set(files) == {"index.html", "play.js", "play.css"}
    for name, text in files.items():
        rest = text.replace("ws://${location.host}/ws", "")
        assert "://" not in rest and "cdn" not in rest.lower(), name


def test_the_map_gives_each_centroid_back_on_its_spot_and_the_plane_between():
    rng = np.random.default_rng(0)
    cents = {n: rng.normal(size=6).tolist() for n in ("clarinet", "flute", "trumpet", "violin")}
    m = TimbreMap(latent_of(cents))
    info = m.describe()
    assert [i["name"] for i in info["instruments"]] == sorted(cents)
    for inst in info["instruments"]:
        assert -1 < inst["x"] < 1 and -1 < inst["y"] < 1
        z = m.z_at(inst["x"], inst["y"])
        # the centroid itself (up to the small pull of the others' remainders)
        assert np.linalg.norm(z - np.asarray(cents[inst["name"]])) < 0.05 * np.linalg.norm(z)
    # far from every centroid: a point of the plane (no remainder), which projects back
    a, b = info["instruments"][0], info["instruments"][1]
    far = (np.clip(-a["x"] - b["x"], -1, 1), np.clip(-a["y"] - b["y"], -1, 1))
    if (
        min(np.hypot(far[0] - i["x"], far[1] - i["y"]) for i in info["instruments"])
        > 4 * SNAP_RADIUS
    ):
        z = m.z_at(*far)
        assert np.allclose(m.plane(z[None])[0] / m.extent, far, atol=1e-4)


def test_the_session_ignores_and_counts_bad_messages_and_a_lost_page_lets_go(tiny_run: Path):
    from ddsp_morph.realtime.performer import PerformerSettings
    from ddsp_morph.realtime.play.server import open_session

    session = open_session(tiny_run, PerformerSettings(engine="torch", device_rate=16000))
    bad = [
        "not a dict",
        {"type": 3},
        {"type": "note_on", "note": 200, "velocity": 100},
        {"type": "note_on", "note": 60, "velocity": 0},
        {"type": "note_on", "note": 60.5, "velocity": 90},
        {"type": "note_on", "note": True, "velocity": 90},
        {"type": "pad", "x": 2.0, "y": 0},
        {"type": "pad", "x": float("nan"), "y": 0},
        {"type": "path", "from": "violin", "to": "nothing", "morph": 0.5},
        {"type": "sustain", "on": "yes"},
        {"type": "explode"},
    ]
    for msg in bad:
        assert session.handle("p1", msg) is False
    assert session.malformed == len(bad)
    audio = np.concatenate([session.next_block() for _ in range(20)])
    assert np.all(np.isfinite(audio))
    assert session.handle("p1", {"type": "sustain", "on": True})
    assert session.handle("p1", {"type": "note_on", "note": 60, "velocity": 100})
    assert session.handle("p2", {"type": "note_on", "note": 64, "velocity": 100})
    assert session.performer.controller.current == (64, 100)
    session.release("p2")  # page 2 went away: its note ends although the pedal is down
    assert session.performer.controller.current == (60, 100)
    assert session.performer.controller.pedal  # the pedal stays as page 1 set it
    names = session.map.names
    assert session.handle("p1", {"type": "path", "from": names[0], "to": names[1], "morph": 1})
    assert session.performer.latent.target == names[1] and session.performer.z_override is None
    assert session.handle("p1", {"type": "pad", "x": 0.1, "y": -0.2})
    assert session.performer.z_override is not None
    frame = session.frame(16000)
    assert len(frame["spectrum"]) == 128 and frame["malformed"] == len(bad)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_play(run: Path, out: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddsp_morph.play", "--run", str(run), "--no-audio"]
        + ["--out", str(out), "--port", str(port), "--engine", "torch", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "play: http://127.0.0.1:<port>/" once it serves
    assert line.startswith("play: http://"), (line, proc.stderr.read()[-2000:])
    return proc, port


def stop_play(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    return err


def test_the_server_speaks_websocket_and_two_pages_share_one_synth(tiny_run: Path, tmp_path: Path):
    import asyncio

    import aiohttp

    out = tmp_path / "take.wav"
    proc, port = start_play(tiny_run, out)

    async def talk() -> tuple[dict, dict, dict]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                page = await r.text()
                assert r.status == 200 and "timbre map" in page
            async with (
                http.ws_connect(f"ws://127.0.0.1:{port}/ws") as a,
                http.ws_connect(f"ws://127.0.0.1:{port}/ws") as b,
            ):
                hello = await a.receive_json()
                await b.receive_json()
                await a.send_str("{not json")
                await a.send_json({"type": "note_on", "note": 300, "velocity": 1})
                await b.send_json({"type": "note_on", "note": 67, "velocity": 110})
                frame = {}
                for _ in range(200):
                    msg = await a.receive_json()
                    if msg["type"] == "frame" and msg["f0_hz"] > 0 and msg["malformed"] == 2:
                        frame = msg
                        break
                await b.close()  # page b goes away holding its note: the note ends
                after = {}
                for _ in range(200):
                    msg = await a.receive_json()
                    if msg["type"] == "frame" and msg["f0_hz"] == 0:
                        after = msg
                        break
                # record a take and download it; switch to a run of the menu (the same one)
                await a.send_json({"type": "record", "on": True})
                await asyncio.sleep(0.5)
                await a.send_json({"type": "record", "on": False})
                recorded = {}
                for _ in range(200):
                    msg = await a.receive_json()
                    if msg["type"] == "recorded":
                        recorded = msg
                        break
                async with http.get(f"http://127.0.0.1:{port}{recorded['url']}") as r:
                    take = await r.read()
                    assert r.status == 200 and take[:4] == b"RIFF" and len(take) > 8000
                await a.send_json({"type": "run", "name": hello["runs"][0]})
                again = {}
                for _ in range(400):
                    msg = await a.receive_json()
                    if msg["type"] == "hello":
                        again = msg
                        break
                assert again.get("run") == hello["runs"][0]
                return hello, frame, after

    try:
        hello, frame, after = asyncio.run(talk())
    finally:
        stop_play(proc)
    assert hello["type"] == "hello" and hello["map"]["instruments"]
    assert frame and abs(1200 * np.log2(frame["f0_hz"] / 392.0)) < 1  # G4, played by page b
    assert after, "the note of the page that went away did not end"
    events = json.loads(out.with_suffix(".events.json").read_text())["events"]
    assert [e["kind"] for e in events if e["kind"] in ("note_on", "note_off")] == [
        "note_on",
        "note_off",
    ]


@pytest.mark.slow
def test_the_server_refuses_a_port_in_use_and_says_what_another_host_exposes(
    tiny_run: Path, tmp_path: Path
):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "ddsp_morph.play", "--run", str(tiny_run), "--no-audio"]
            + ["--out", str(tmp_path / "o.wav"), "--port", str(port), "--engine", "torch"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(
        f"error: --port {port}"
    )
    proc, _ = start_play(tiny_run, tmp_path / "p.wav", "--host", "0.0.0.0", "--seconds", "1")
    _, err = proc.communicate(timeout=60)
    assert "WARNING: serving on 0.0.0.0" in err


# --- in a real browser --------------------------------------------------------------------
def chromium() -> tuple[str, str]:
    """chromium and its driver, installed from Debian where missing (CI), or skip in one line."""
    want = ("chromium", "chromedriver")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
    for first in ([], ["apt-get", "update", "-q"]):  # the package lists may be stale
        if all(shutil.which(w) for w in want) or not shutil.which("apt-get") or os.geteuid():
            break
        if first:
            subprocess.run(first, capture_output=True, timeout=600, env=env)
        subprocess.run(install, capture_output=True, timeout=900, env=env)
    found = [shutil.which(w) for w in want]
    if not all(found):
        pytest.skip(
            "chromium and chromium-driver are not installed and cannot be (apt-get as root)"
        )
    return found[0], found[1]


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,900"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    yield b
    b.quit()


@pytest.mark.slow
def test_the_page_plays_the_keys_moves_the_timbre_and_draws_the_sound(
    browser, two_timbre_run, tmp_path: Path
):
    """Keys pressed on the page sound at their pitch; dragging the puck from one instrument to
    the other moves the corpus classifier's answer from A to B; the spectrogram is drawn and the
    map names every instrument; a malformed message does not stop the stream."""
    import soundfile as sf
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from ddsp_morph.evaluation.classifier import corpus_classifier

    corpus, run = two_timbre_run
    out = tmp_path / "take.wav"
    proc, port = start_play(run, out)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        for _ in range(100):
            if browser.execute_script("return window.ddspMorph && window.ddspMorph.state.map"):
                break
            time.sleep(0.1)
        state = browser.execute_script("return window.ddspMorph.state.map")
        names = [i["name"] for i in state["instruments"]]
        pad = browser.find_element(By.ID, "pad")
        size = pad.size

        def offset(inst: dict) -> tuple[int, int]:  # from the pad's centre, in CSS pixels
            return round(inst["x"] / 2 * size["width"]), round(-inst["y"] / 2 * size["height"])

        a, b = state["instruments"][0], state["instruments"][1]
        body = browser.find_element(By.TAG_NAME, "body")
        # 1. two notes from the computer keys: A (C4), then G (G4)
        for key in ("a", "g"):
            ActionChains(browser).key_down(key, body).pause(1.0).key_up(key, body).perform()
            time.sleep(0.3)
        # 2. a malformed message from the page itself; the stream goes on
        browser.execute_script(
            'window.ddspMorph.state.socket.send(\'{"type": "note_on", "note": -4}\')'
        )
        # 3. hold a note on the on-screen keyboard (E4) while the puck goes from A to B
        keys = browser.find_elements(By.CSS_SELECTOR, "#keyboard .key")
        e4 = next(k for k in keys if k.get_attribute("data-offset") == "4")
        ActionChains(browser).move_to_element(pad).move_by_offset(*offset(a)).click().perform()
        ActionChains(browser).click_and_hold(e4).perform()
        time.sleep(2.0)  # at A
        drag = (
            ActionChains(browser).move_to_element(pad).move_by_offset(*offset(a)).click_and_hold()
        )
        (ax, ay), (bx, by) = offset(a), offset(b)
        for _ in range(20):
            drag.move_by_offset(round((bx - ax) / 20), round((by - ay) / 20)).pause(0.05)
        drag.release().perform()
        ActionChains(browser).move_to_element(pad).move_by_offset(bx, by).click().perform()
        time.sleep(2.0)  # at B
        ActionChains(browser).release().perform()
        browser.execute_script(
            "document.querySelectorAll('.key.down').forEach(k => k.dispatchEvent(new PointerEvent('pointerup')))"
        )
        time.sleep(0.5)
        drawn = browser.execute_script(
            "const c = document.getElementById('spectrogram');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) lit++;"
            "return lit / (d.length / 4);"
        )
        malformed = int(browser.find_element(By.ID, "malformed").text)
        labels = browser.execute_script(
            "return window.ddspMorph.state.map.instruments.map(i => i.name)"
        )
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        browser.save_screenshot(str(tmp_path / "play.png"))
        if os.environ.get("DDSP_MORPH_WRITE_DOCS"):
            shutil.copy(tmp_path / "play.png", docs / "play.png")
    finally:
        stop_play(proc)

    assert drawn > 0.05, "the spectrogram canvas is blank"
    assert malformed >= 1 and labels == names and len(names) == 2
    audio, rate = sf.read(out, dtype="float32")
    events = json.loads(out.with_suffix(".events.json").read_text())["events"]
    ons = [e for e in events if e["kind"] == "note_on"]
    offs = [e for e in events if e["kind"] == "note_off"]
    assert [e["data"]["note"] for e in ons] == [60, 67, 64]
    # the stream never stopped: it covers the whole session without a gap of silence in the middle
    assert len(audio) / rate > 8.0
    # 1. the keys sound at their pitch (f0 of the held middle of each note, within 20 cents)
    import soxr

    from ddsp_morph.data.features import FeatureSettings, extract_f0

    for on, off, hz in ((ons[0], offs[0], 261.63), (ons[1], offs[1], 392.0)):
        seg = audio[on["sample"] + rate // 4 : off["sample"] - rate // 10]
        seg = soxr.resample(seg, rate, 16000).astype(np.float32)
        f0, periodicity = extract_f0(seg, FeatureSettings())
        voiced = f0[periodicity >= 0.5]
        assert len(voiced) > 10 and abs(1200 * np.log2(np.median(voiced) / hz)) <= 20, (
            hz,
            np.median(voiced),
        )
    # 2. the puck from A to B: the corpus classifier hears A at the start of the held note, B at its end
    pads = [e for e in events if e["kind"] == "pad" and e["sample"] > ons[2]["sample"]]
    first_pad, last_pad = pads[0]["sample"], pads[-1]["sample"]
    classifier = corpus_classifier(corpus)
    at_a = audio[first_pad + rate // 4 : first_pad + rate * 7 // 4]
    at_b = audio[last_pad + rate // 4 : last_pad + rate * 7 // 4]
    heard = []
    for x in (at_a, at_b):
        p = classifier.proba_of(soxr.resample(x, rate, 16000).astype(np.float32), 16000)
        heard.append((max(p, key=p.get), round(float(p[b["name"]]), 2)))
    assert [h[0] for h in heard] == [a["name"], b["name"]], heard
