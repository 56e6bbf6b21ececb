"""DSP and training-step benchmark: ours next to a straightforward reference, same process.

    make bench            # or: python experiments/benchmarks/dsp_bench.py [--quick]

Each timed case runs in a fresh subprocess so that its peak memory (Linux VmHWM, reset
before the case) is its own. Ratios are reference / ours for time and ours / reference
for memory: a time ratio above 1 and a memory ratio below 1 are wins.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import platform
import statistics
import time

import torch
import torch.nn.functional as F

SR, HOP = 16000, 128


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _inputs(batch: int, seconds: float, n_harmonics: int, n_bands: int, grad: bool):
    g = torch.Generator().manual_seed(0)
    m = int(seconds * SR) // HOP
    f0 = torch.rand(batch, m, generator=g) * 400 + 100
    amp = torch.rand(batch, m, 1, generator=g).requires_grad_(grad)
    dist = torch.rand(batch, m, n_harmonics, generator=g).requires_grad_(grad)
    mags = torch.rand(batch, m, n_bands, generator=g).requires_grad_(grad)
    return f0, amp, dist, mags


def noise_reference(mags, noise):
    """Direct time-domain convolution of each hop of noise with its frame's FIR, overlap-added."""
    from ddsp_morph.dsp.noise import noise_filter_irs

    b, m, _ = mags.shape
    irs = noise_filter_irs(mags)  # [B, M, L]
    L = irs.shape[-1]
    frames = noise.reshape(1, b * m, HOP)
    y = F.conv1d(
        F.pad(frames, (L - 1, L - 1)), irs.reshape(b * m, 1, L).flip(-1), groups=b * m
    )  # [1, BM, HOP+L-1]
    y = y.reshape(b, m, HOP + L - 1)
    out = F.fold(
        y.transpose(1, 2),
        output_size=(1, (m - 1) * HOP + HOP + L - 1),
        kernel_size=(1, HOP + L - 1),
        stride=(1, HOP),
    )
    return out.reshape(b, -1)[:, : m * HOP]


def reverb_reference(audio, ir):
    """Direct time-domain convolution (conv1d), cropped to the input length."""
    b, n = audio.shape
    y = F.conv1d(
        F.pad(audio.unsqueeze(0), (ir.shape[-1] - 1, 0)), ir.flip(-1).unsqueeze(1), groups=b
    )
    return y[0, :, :n]


def case(name: str, args: dict) -> dict:
    """Run one case; returns median time (s) and peak memory (MB) above the start."""
    torch.set_num_threads(args.get("threads", torch.get_num_threads()))
    from ddsp_morph.dsp.noise import filtered_noise
    from ddsp_morph.dsp.oscillators import harmonic_synth, harmonic_synth_reference
    from ddsp_morph.dsp.reverb import fft_convolve

    b, secs, k, nb, backward = (
        args["batch"],
        args["seconds"],
        args["n_harmonics"],
        args["n_bands"],
        args["backward"],
    )
    f0, amp, dist, mags = _inputs(b, secs, k, nb, backward)
    noise = torch.rand(b, f0.shape[1] * HOP) * 2 - 1
    ir = torch.rand(1, int(args.get("ir_seconds", 1.0) * SR)) * torch.exp(
        -torch.arange(int(args.get("ir_seconds", 1.0) * SR)) / 3000.0
    )
    ir_b = ir.expand(b, -1).contiguous()
    audio = torch.randn(b, f0.shape[1] * HOP, requires_grad=backward)

    def harm():
        return harmonic_synth(f0, amp, dist, sample_rate=SR, hop_length=HOP)

    def harm_ref():
        return harmonic_synth_reference(f0, amp, dist, sample_rate=SR, hop_length=HOP)

    fns = {
        "harmonic": harm,
        "harmonic_ref": harm_ref,
        "noise": lambda: filtered_noise(mags, hop_length=HOP, noise=noise),
        "noise_ref": lambda: noise_reference(mags, noise),
        "reverb": lambda: fft_convolve(audio, ir_b),
        "reverb_ref": lambda: reverb_reference(audio, ir_b),
        "stack": lambda: fft_convolve(
            harm() + filtered_noise(mags, hop_length=HOP, noise=noise), ir_b
        ),
        "stack_ref": lambda: reverb_reference(harm_ref() + noise_reference(mags, noise), ir_b),
    }
    if args.get("registers"):
        # clips each in its own register (MIDI 45-93, as a multi-instrument batch) with vibrato
        f0 = _synthetic_batch(b, secs, HOP, seed=1)[0]
    if args.get("one_group"):
        # the bank as before frame grouping: every frame computes the harmonics of the batch's
        # lowest pitch
        import ddsp_morph.dsp.oscillators as osc

        osc._frame_groups = osc._one_group
    fn = fns[name]
    reps = args.get("reps", 3)
    times = []
    fn()  # warm-up
    before = _rss_kb("VmRSS")
    _reset_peak()
    for _ in range(reps):
        t = time.perf_counter()
        y = fn()
        if backward:
            y.square().sum().backward()
        times.append(time.perf_counter() - t)
        del y
    peak = (_rss_kb("VmHWM") - before) / 1024
    return {"time_s": statistics.median(times), "peak_mb": max(peak, 0.0)}


def training_step_case(args: dict) -> dict:
    torch.set_num_threads(args.get("threads", torch.get_num_threads()))
    from ddsp_morph.dsp.spectral import multiscale_spectral_loss
    from ddsp_morph.models.autoencoder import DDSPAutoencoder
    from ddsp_morph.models.decoder import Decoder
    from ddsp_morph.synths.stack import SynthStack

    hop = args["hop"]
    synth = SynthStack(
        sample_rate=SR,
        hop_length=hop,
        n_harmonics=100,
        noise=True,
        n_noise_bands=65,
        reverb=args["reverb"],
        reverb_seconds=1.0,
    )
    dec = Decoder(
        input_sizes={"f0": 1, "loudness": 1},
        output_sizes=synth.control_sizes,
        hidden_size=512,
        gru_size=512,
    )
    model = DDSPAutoencoder(decoder=dec, synth=synth, conditioning=["f0", "loudness"])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    b, m = args["batch"], int(args["seconds"] * SR) // hop
    g = torch.Generator().manual_seed(0)
    batch = {
        "f0_hz": torch.rand(b, m, generator=g) * 400 + 100,
        "loudness_db": torch.randn(b, m, generator=g) * 10 - 40,
        "audio": torch.randn(b, m * hop, generator=g) * 0.1,
    }

    def loss_fn():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args["precision"] == "bf16-mixed"):
            out = model(batch)
        return multiscale_spectral_loss(out["audio"], batch["audio"])

    return _timed_steps(loss_fn, opt, args.get("reps", 3))


def _timed_steps(loss_fn, opt, reps: int) -> dict:
    """Median seconds of ``reps`` steps (loss, backward, optimizer) after one warm-up, and the
    process's peak memory."""
    times = []
    for i in range(reps + 1):
        t = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return {"time_s": statistics.median(times), "peak_process_mb": _rss_kb("VmHWM") / 1024}


def _synthetic_batch(batch: int, seconds: float, hop: int, seed: int = 0):
    """Clips each in its own register (MIDI 45-93) with vibrato, noise for audio:
    f0 (Hz), loudness (dB) [batch, frames] and audio [batch, frames * hop]."""
    g = torch.Generator().manual_seed(seed)
    m = int(seconds * SR) // hop
    midi = torch.rand(batch, 1, generator=g) * 48 + 45
    t = torch.arange(m) * hop / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12) * (1 + 0.01 * torch.sin(2 * math.pi * 5.5 * t))
    loud = torch.randn(batch, m, generator=g) * 5 - 40
    audio = torch.randn(batch, m * hop, generator=g) * 0.1
    return f0, loud, audio


def matched_step_case(args: dict) -> dict:
    """One training step (forward, objective, backward, Adam) on a batch of ``batch`` x
    ``seconds`` clips, one thread: ``which`` = "reference" (ddsp_pytorch's shape,
    ``reference_step.py``, its block of 160) or "ours" (the default config's Lightning module,
    its whole training objective, decoder ``hidden``/``gru``). Median seconds of ``reps``."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    b, secs = args["batch"], args["seconds"]
    if args["which"] == "reference":
        from reference_step import ReferenceDDSP, reference_loss

        model = ReferenceDDSP(hidden=args["hidden"], sample_rate=SR, block=160)
        f0, loud, audio = _synthetic_batch(b, secs, 160)
        params = list(model.parameters())

        def loss_fn():
            out = model(f0.unsqueeze(-1), ((loud + 40) / 12).unsqueeze(-1))
            return reference_loss(out, audio)

    else:
        from pathlib import Path

        from hydra import compose, initialize_config_dir

        import ddsp_morph
        from ddsp_morph.build import build_model
        from ddsp_morph.training.setup import build_module

        conf = str(Path(ddsp_morph.__file__).parent / "conf")
        with initialize_config_dir(conf, version_base=None):
            cfg = compose(
                "config",
                overrides=[f"model.hidden_size={args['hidden']}", f"model.gru_size={args['gru']}"],
            )
        hop = int(cfg.data.hop_length)
        model = build_model(cfg, n_instruments=4)
        model.set_loudness_stats(-40.0, 12.0)
        module = build_module(cfg, model, instruments=["a", "b", "c", "d"])
        module.log = lambda *a, **k: None
        f0, loud, audio = _synthetic_batch(b, secs, hop)
        batch = {
            "f0_hz": f0,
            "loudness_db": loud,
            "audio": audio,
            "instrument_id": torch.arange(b) % 4,
        }
        params = list(module.parameters())

        bf16 = args.get("precision") == "bf16-mixed"

        def loss_fn():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return module.objective(module(batch), batch, "train")

    opt = torch.optim.Adam(params, 1e-3)
    _reset_peak()
    return _timed_steps(loss_fn, opt, args.get("reps", 3))


def print_matched_steps(results: dict, size: dict, reps: int) -> None:
    """The training step against ddsp_pytorch's shape at the same batch (issue 34: the step is
    part of the 25-minute budget), one thread each: audio-seconds trained per CPU-second."""
    audio_s = size["batch"] * size["seconds"]
    print(
        f"\nTraining step against ddsp_pytorch's shape (reference_step.py), batch {size['batch']} x "
        f"{size['seconds']} s, one thread each (audio-seconds per CPU-second; peak process memory):"
    )
    ref = _run(matched_step_case, dict(size, which="reference", hidden=512, reps=reps))
    results["matched_step/reference/512"] = ref
    print(
        f"  {'reference, hidden/GRU 512':38s} {ref['time_s']:7.2f} s/step {audio_s / ref['time_s']:6.1f} "
        f"audio-s/s {ref['peak_process_mb']:7.0f} MB"
    )
    for label, hidden, gru in (
        ("ours, default objective, 512/512", 512, 512),
        ("ours, default objective, 128/128", 128, 128),
    ):
        r = _run(matched_step_case, dict(size, which="ours", hidden=hidden, gru=gru, reps=reps))
        results[f"matched_step/ours/{hidden}"] = r
        print(
            f"  {label:38s} {r['time_s']:7.2f} s/step {audio_s / r['time_s']:6.1f} audio-s/s "
            f"{r['peak_process_mb']:7.0f} MB: {ref['time_s'] / r['time_s']:.2f}x the reference's "
            f"rate at {r['peak_process_mb'] / ref['peak_process_mb']:.2f}x its memory"
        )
    # the step make train runs: its crops (16 x 1 s) at the precision trainer.precision=auto
    # picks on this CPU (bf16-mixed where it has AMX); not comparable with the rows above
    from ddsp_morph.training.setup import resolve_precision

    precision = str(resolve_precision("auto", "cpu"))
    crops = dict(batch=size["batch"], seconds=min(1.0, size["seconds"]))
    r = _run(
        matched_step_case,
        dict(crops, which="ours", hidden=128, gru=128, reps=3 * reps, precision=precision),
    )
    results["training_step/ours/128"] = dict(r, precision=precision, **crops)
    print(
        f"  {'ours, make train: ' + str(crops['batch']) + ' x ' + str(crops['seconds']) + ' s, ' + precision:38s} "
        f"{r['time_s']:7.3f} s/step {crops['batch'] * crops['seconds'] / r['time_s']:6.1f} audio-s/s "
        f"{r['peak_process_mb']:7.0f} MB"
    )


def encoder_stride_case(args: dict) -> dict:
    """The default timbre encoder (30 MFCCs, GRU 256, pooled VAE) fwd+bwd on a batch of 1 s
    crops, reading every frame and every second frame (``latent.frame_stride``): both in this
    process, their repetitions interleaved. Median seconds per pass for each stride."""
    torch.set_num_threads(args.get("threads", 1))
    from ddsp_morph.models.encoder import TimbreEncoder

    g = torch.Generator().manual_seed(0)
    m = int(args["seconds"] * SR) // HOP
    audio = torch.randn(args["batch"], m * HOP, generator=g) * 0.1
    encoders = {s: TimbreEncoder(sample_rate=SR, hop_length=HOP, frame_stride=s) for s in (1, 2)}
    times: dict[int, list[float]] = {1: [], 2: []}
    for i in range(args.get("reps", 5) + 1):
        for stride, enc in encoders.items():
            t = time.perf_counter()
            out = enc(audio, m)
            (out["mu"].square().sum() + out["logvar"].sum()).backward()
            if i:
                times[stride].append(time.perf_counter() - t)
    return {f"stride{s}_s": statistics.median(v) for s, v in times.items()}


def decoder_passes_case(args: dict) -> dict:
    """The default decoder's passes of one training step with a latent (128/128, FiLM, z 16;
    16 clips x 1 s, the path and conversion terms on a 64-frame window), fwd+bwd, one thread,
    both ways in this process, their repetitions interleaved:
    - ``separate``: the main pass with z written out per frame, then one pass per z of the
      window (own, other clip's, midpoint, conversion), as before the stacked pass;
    - ``stacked``: the main pass with z held over the frames (its MLP once per clip), then the
      window's four z in one pass, the performance's MLPs run once and tiled.
    Median seconds per step's decoder work for each."""
    torch.set_num_threads(args.get("threads", 1))
    from ddsp_morph.models.decoder import Decoder
    from ddsp_morph.synths.stack import SynthStack

    synth = SynthStack(
        sample_rate=SR, hop_length=HOP, n_harmonics=100, noise=True, n_noise_bands=65
    )
    torch.manual_seed(0)
    dec = Decoder(
        input_sizes={"f0": 1, "loudness": 1, "z": 16},
        output_sizes=synth.control_sizes,
        hidden_size=128,
        gru_size=128,
        z_mode="film",
    )
    b, m, w = args["batch"], int(args["seconds"] * SR) // HOP, 64
    g = torch.Generator().manual_seed(0)
    perf = {"f0": torch.rand(b, m, 1, generator=g), "loudness": torch.randn(b, m, 1, generator=g)}
    window = {k: v[:, 10 : 10 + w] for k, v in perf.items()}
    z = torch.randn(b, 1, 16, generator=g, requires_grad=True)
    other = torch.roll(torch.arange(b), 1)

    def window_zs():
        return [z, z[other], 0.5 * (z + z[other]), z[other].detach()]

    def separate() -> torch.Tensor:
        outs = [dec({**perf, "z": z.expand(-1, m, -1).contiguous()})]
        outs += [dec({**window, "z": zz.expand(-1, w, -1).contiguous()}) for zz in window_zs()]
        return sum(v.square().mean() for o in outs for v in o.values())

    def stacked() -> torch.Tensor:
        outs = [dec({**perf, "z": z.expand(-1, m, -1)})]
        outs += [dec({**window, "z": torch.cat(window_zs())})]
        return sum(v.square().mean() for o in outs for v in o.values())

    times: dict[str, list[float]] = {"separate": [], "stacked": []}
    for i in range(args.get("reps", 7) + 1):
        for name, fn in (("separate", separate), ("stacked", stacked)):
            t = time.perf_counter()
            fn().backward()
            if i:
                times[name].append(time.perf_counter() - t)
    return {f"{k}_s": statistics.median(v) for k, v in times.items()}


def streaming_case(args: dict) -> dict:
    """One block of harmonic (100) + noise (65 bands) + 1 s reverb, one thread: the compiled
    kernels of realtime.kernels ("compiled", what the fast engine runs), the torch realtime
    kernels of dsp.stream ("ours") and the general one-shot functions called block by block
    with their state ("general"), on the same inputs in the same process."""
    torch.set_num_threads(1)
    from ddsp_morph.dsp.noise import filtered_noise
    from ddsp_morph.dsp.oscillators import harmonic_synth
    from ddsp_morph.dsp.reverb import PartitionedConvolver
    from ddsp_morph.dsp.stream import HarmonicStream, NoiseStream, ReverbStream

    frames = args["block_frames"]
    ir = torch.rand(1, SR) * torch.exp(-torch.arange(SR) / 3000.0)
    g = torch.Generator().manual_seed(0)
    f0, amp = torch.full((1, frames), 220.0), torch.full((1, frames, 1), 0.1)
    dist, mags = torch.rand(1, frames, 100, generator=g), torch.rand(1, frames, 65, generator=g)

    def general():
        conv = PartitionedConvolver(ir, HOP * frames)
        state, tail = None, None

        def block():
            nonlocal state, tail
            h, state = harmonic_synth(
                f0, amp, dist, sample_rate=SR, hop_length=HOP, state=state, return_state=True
            )
            n, tail = filtered_noise(mags, hop_length=HOP, generator=g, tail=tail, return_tail=True)
            return conv.process(h + n)

        return block

    def ours():
        hs = HarmonicStream(n_harmonics=100, sample_rate=SR, hop_length=HOP, n_frames=frames)
        ns = NoiseStream(n_bands=65, hop_length=HOP, n_frames=frames)
        rs = ReverbStream(ir, HOP * frames)
        f, a, d, m = f0[0], amp[0, :, 0], dist[0], mags[0]

        def block():
            noise = torch.rand(frames * HOP, generator=g) * 2.0 - 1.0
            return rs.process(hs.process(f, a, d) + ns.process(m, noise))

        return block

    def compiled():
        import numpy as np

        from ddsp_morph.dsp.core import upsample_ramp
        from ddsp_morph.realtime import kernels

        ns = NoiseStream(n_bands=65, hop_length=HOP, n_frames=frames)
        rs = ReverbStream(ir, HOP * frames)
        basis, spec = kernels.fir_basis(ns.basis_reversed.numpy()), rs.ir_twice.numpy()
        ir_re = np.ascontiguousarray(spec.real, np.float32)
        ir_im = np.ascontiguousarray(spec.imag, np.float32)
        ring_re = np.zeros((rs.n_parts, HOP * frames + 1), np.float32)
        ring_im = np.zeros_like(ring_re)
        frame, cos_t, sin_t = np.zeros(2 * HOP * frames), *kernels.twiddles(2 * HOP * frames)
        ramp, h_state, prev = upsample_ramp(HOP).numpy(), np.zeros(3), np.zeros(100, np.float32)
        tail = np.zeros(ns.ir_size - 1, np.float32)
        h, n, out = (np.zeros(HOP * frames, np.float32) for _ in range(3))
        f, a, d, m = (x[0].numpy() for x in (f0, amp[..., 0], dist, mags))
        rng, noise = np.random.default_rng(0), np.zeros(HOP * frames, np.float32)
        state = {"head": 0}

        def block():
            rng.random(HOP * frames, dtype=np.float32, out=noise)
            noise[:] = noise * 2.0 - 1.0
            kernels.harmonic_block(f, a, d, ramp, float(SR), h_state, prev, h)
            kernels.noise_block(m, noise, basis, tail, n)
            h[:] += n
            state["head"] = kernels.reverb_block(
                h, frame, ring_re, ring_im, ir_re, ir_im, cos_t, sin_t, state["head"], 1.0, out
            )
            return out

        return block

    out = {}
    with torch.inference_mode():
        for name, make in (("compiled", compiled), ("ours", ours), ("general", general)):
            block, times = make(), []
            for i in range(args["n_blocks"] + 50):
                t = time.perf_counter()
                block()
                if i >= 50:
                    times.append(time.perf_counter() - t)
            times.sort()
            out[name] = {
                "median_ms": 1e3 * times[len(times) // 2],
                "p99_ms": 1e3 * times[int(len(times) * 0.99)],
            }
    return out


ENGINES = {
    # name: (engine, decoder weights, input tables); "torch" is the reference StreamingEngine
    "torch": ("torch", None, None),
    "fast": ("fast", "float32", 0),
    "fast+tables": ("fast", "float32", 2048),
    "fast+tables int16": ("fast", "int16", 2048),
    "fast+tables int8": ("fast", "int8", 2048),
}


def _block_fn(ref, engine: str = "torch"):
    """(block(f0, loudness, z) -> audio): the call the live loop makes per block over the
    model of the torch engine ``ref`` (numpy arrays for the compiled engine, tensors for the
    torch one)."""
    kind, weights, tables = ENGINES[engine]
    frames = ref.frames
    if kind == "torch":
        f0, loud = torch.empty(frames), torch.empty(frames)

        def block(f0_hz, loudness_db, z):
            f0.copy_(torch.from_numpy(f0_hz))
            loud.copy_(torch.from_numpy(loudness_db))
            return ref.process(f0, loud, torch.from_numpy(z)).numpy()

        return block
    from ddsp_morph.realtime.fast import FastEngine

    fast = FastEngine(ref.model, frames_per_block=frames, weights=weights, input_tables=tables)
    return fast.process_numpy


def _tiny_or_full_engine(hidden: int, gru: int, frames: int):
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from ddsp_morph.build import build_model
    from ddsp_morph.realtime.engine import StreamingEngine

    conf = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "synth=harmonic_noise_reverb",
                f"model.hidden_size={hidden}",
                f"model.gru_size={gru}",
            ],
        )
    return StreamingEngine(build_model(cfg, n_instruments=4), frames_per_block=frames)


def audio_in_case(args: dict) -> dict:
    """Audio in and the host exports, one thread, 128/128 untrained model: per 8-ms hop the
    tracker (YIN + loudness + voicing + gain: the default) against PESTO streaming (the
    reference network tracker), the 48 -> 16 kHz downsampler; per 512-sample host buffer at
    48 kHz the nn~ module's forward (controls in) and audio (instrument in) methods and the
    Neutone wrapper, against the compiled engine rendering the same 10.7 ms."""
    import json as _json
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np

    from ddsp_morph.dsp.resample import PolyphaseDownsampler
    from ddsp_morph.realtime.audio_in import StreamingPitch
    from ddsp_morph.realtime.nn_tilde import build_nn_module
    from ddsp_morph.realtime.tracker import InputFollower

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    tone = (0.2 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)

    def timed(fn, items, warm=20):
        for x in items[:warm]:
            fn(x)
        times = []
        for x in items[warm:]:
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
        times.sort()
        return 1e3 * times[len(times) // 2]

    hops = [torch.from_numpy(tone[i : i + HOP]) for i in range(0, SR - HOP, HOP)]
    fol = InputFollower(SR, HOP, fmin=98.0, fmax=2000.0, target_db=-25.0, floor_db=-90.0)
    out = {"yin_follower_ms_per_hop": timed(fol, hops)}
    pesto = StreamingPitch(SR, HOP)
    out["pesto_ms_per_hop"] = timed(pesto, [h.numpy() for h in hops])
    down = PolyphaseDownsampler(3)
    x48 = np.repeat(tone, 3)
    out["downsampler_ms_per_hop"] = timed(
        down.process, [x48[i : i + 384] for i in range(0, len(x48) - 384, 384)]
    )
    ref = _tiny_or_full_engine(args["hidden"], args["gru"], 1)
    z_dim = ref.model.encoder.z_dim
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "stats.json").write_text(
            _json.dumps(
                {
                    "loudness_db_voiced_mean": -25.0,
                    "loudness_db_min": -90.0,
                    "f0_hz_voiced_p005": 147.0,
                }
            )
        )
        cfg = SimpleNamespace(data=SimpleNamespace(sample_rate=SR, hop_length=HOP, corpus_dir=tmp))
        run = SimpleNamespace(
            model=ref.model.eval(),
            cfg=cfg,
            extra={"latent": {"centroids": {"a": [0.5] * z_dim, "b": [-0.5] * z_dim}}},
            checkpoint_path="bench",
        )
        module, _ = build_nn_module(run)
    nn = torch.jit.script(module)
    controls = torch.zeros(1, 3, 512)
    controls[0, 0], controls[0, 1], controls[0, 2] = 330.0, -25.0, 0.5
    audio = torch.zeros(1, 2, 512)
    audio[0, 0] = torch.from_numpy(x48[:512])
    with torch.no_grad():
        out["nn_tilde_forward_ms_per_512"] = timed(nn, [controls] * 300)
        out["nn_tilde_audio_ms_per_512"] = timed(nn.audio, [audio] * 300)
    fast = _block_fn(ref, "fast+tables int16")
    f0, loud, z = (
        np.full(1, 330.0, np.float32),
        np.full(1, -25.0, np.float32),
        np.zeros(z_dim, np.float32),
    )
    out["fast_engine_ms_per_hop"] = timed(lambda _: fast(f0, loud, z), list(range(400)))
    return out


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def soak_case(args: dict) -> dict:
    """``seconds`` of headless synthesis at realtime pace (engine + 16 -> 48 kHz upsampler, the
    morph moving every block) against a simulated audio device that plays one block every
    block period from a queue ``device_blocks`` deep (``soak`` keeps the other core busy
    meanwhile). An xrun is a block not ready when the device needs it (the device then plays
    silence and carries on)."""
    torch.set_num_threads(1)
    from ddsp_morph.dsp.resample import PolyphaseUpsampler

    frames = args["block_frames"]
    block = _block_fn(_tiny_or_full_engine(args["hidden"], args["gru"], frames), args["engine"])
    up = PolyphaseUpsampler(3)
    period = frames * HOP / SR
    n_blocks = int(args["seconds"] / period)
    t = torch.arange(n_blocks * frames, dtype=torch.float32) * (HOP / SR)
    f0 = (220.0 * 2 ** (torch.sin(2 * torch.pi * 0.5 * t) / 12)).numpy()
    loud = (-30.0 + 10 * torch.sin(2 * torch.pi * 0.2 * t)).numpy()
    zs = torch.randn(2, 16).numpy()
    depth = args["device_blocks"]
    xruns, late_ms, compute = 0, 0.0, []
    t0 = time.perf_counter() + depth * period  # the device starts once the queue is full
    for j in range(n_blocks):
        # Blocking write: wait for a free slot (block j - depth has started playing).
        wait = t0 + (j - depth) * period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        start = time.perf_counter()
        alpha = (j % 500) / 500.0
        z = (1 - alpha) * zs[0] + alpha * zs[1]
        sl = slice(j * frames, (j + 1) * frames)
        up.process(block(f0[sl], loud[sl], z))
        done = time.perf_counter()
        compute.append(done - start)
        due = t0 + j * period
        if done > due:  # the device ran dry: silence, then it carries on
            xruns += 1
            late_ms = max(late_ms, 1e3 * (done - due))
            t0 += done - due
    compute.sort()
    return {
        "blocks": n_blocks,
        "xruns": xruns,
        "worst_late_ms": late_ms,
        "compute_median_ms": 1e3 * compute[len(compute) // 2],
        "compute_p99_ms": 1e3 * compute[int(len(compute) * 0.99)],
        "compute_max_ms": 1e3 * compute[-1],
    }


def engine_case(args: dict) -> dict:
    """The realtime engines over one whole model (decoder + latent + harmonic + noise +
    reverb), one thread, untrained weights of the given size (the cost does not depend on
    training): each engine in ENGINES in turn, in this process. Returns name -> timings."""
    import numpy as np

    torch.set_num_threads(1)
    frames = args["block_frames"]
    ref = _tiny_or_full_engine(args["hidden"], args["gru"], frames)
    f0, loud = np.full(frames, 220.0, np.float32), np.full(frames, -30.0, np.float32)
    z = np.zeros(16, np.float32)
    out = {}
    for engine in ENGINES:
        block = _block_fn(ref, engine)
        times = []
        for i in range(args["n_blocks"] + 50):
            t = time.perf_counter()
            block(f0, loud, z)
            if i >= 50:
                times.append(time.perf_counter() - t)
        times.sort()
        med = times[len(times) // 2]
        out[engine] = {
            "median_ms": 1e3 * med,
            "p99_ms": 1e3 * times[int(len(times) * 0.99)],
            "real_time_factor": med / (frames * HOP / SR),
        }
    return out


VOICE_COUNTS = (1, 4, 8, 16)
# the bench's names for the voice bank's arithmetic: (weights, activations)
BANK_WEIGHTS = {
    "int16x16": ("int16", "int16"),  # int16 products summed in int32 (int_dot): the live
    # default where the CPU has AVX-512 BW (elsewhere this row runs the portable vector IR)
    "int16": ("int16", "float32"),  # int16 weights, float32 activations: the default elsewhere
    "float32": ("float32", "float32"),
}


def voices_case(args: dict) -> dict:
    """Polyphony, one thread, untrained weights of the given size: ``VoiceBank`` playing n
    voices together (a chord from C3 up in minor thirds, each voice its own timbre) against
    n separate compiled mono engines (``FastEngine``, one per voice, the way to play n
    voices without the bank), one 8-ms block each. Returns n -> timings."""
    import numpy as np

    from ddsp_morph.realtime.fast import FastEngine
    from ddsp_morph.realtime.voice_bank import VoiceBank

    torch.set_num_threads(1)
    ref = _tiny_or_full_engine(args["hidden"], args["gru"], 1)
    weights, activations = BANK_WEIGHTS[args["weights"]]
    n_blocks = args["n_blocks"]
    top = max(VOICE_COUNTS)
    bank = VoiceBank(ref.model, top, weights=weights, activations=activations)
    rng = np.random.default_rng(0)
    zs = rng.standard_normal((top, 16)).astype(np.float32)
    f0s = (440.0 * 2 ** ((48 + 3 * np.arange(top) - 69) / 12)).astype(np.float32)
    for k in range(top):
        bank.set_z(k, zs[k])
        bank.f0_hz[k], bank.loudness_db[k] = f0s[k], -25.0
        bank.slots[k] = k

    def timed(block) -> tuple[float, float]:
        times = []
        for i in range(n_blocks + 50):
            t = time.perf_counter()
            block()
            if i >= 50:
                times.append(time.perf_counter() - t)
        times.sort()
        return 1e3 * times[len(times) // 2], 1e3 * times[int(len(times) * 0.99)]

    monos = [FastEngine(ref.model, weights=weights) for _ in range(top)]
    loud = np.full(1, -25.0, np.float32)
    out = {}
    for n in VOICE_COUNTS:
        med, p99 = timed(lambda n=n: bank.process(n))

        def separate(n=n):
            for k in range(n):
                monos[k].process_numpy(f0s[k : k + 1], loud, zs[k])

        sep, _ = timed(separate)
        out[n] = {"median_ms": med, "p99_ms": p99, "separate_ms": sep}
    return out


def print_voices(results: dict, n_blocks: int) -> None:
    budget = 1e3 * HOP / SR
    print(
        "\nPolyphony (realtime.voice_bank), one thread, one 8-ms block (128 samples at 16 kHz): n voices "
        "together in one VoiceBank (decoder weights read once per frame for all voices, one shared "
        "reverb) against n separate compiled engines (one FastEngine per voice, each its own reverb); "
        "a chord from C3 up in minor thirds, a timbre per voice:"
    )
    print(
        f"  {'decoder':18s} {'weights':8s} {'voices':>6s} {'median ms':>10s} {'p99 ms':>8s} {'x realtime':>11s} "
        f"{'x one voice':>12s} {'separate ms':>12s} {'speed-up':>9s}"
    )
    for name, hidden, gru in (("full-size, GRU 512", 512, 512), ("tiny, GRU 128", 128, 128)):
        for weights in BANK_WEIGHTS:
            r = _run(voices_case, dict(hidden=hidden, gru=gru, weights=weights, n_blocks=n_blocks))
            one = r[1]["median_ms"]
            for n, t in r.items():
                results[f"voices/{gru}/{weights}/{n}"] = t
                print(
                    f"  {name:18s} {weights:8s} {n:6d} {t['median_ms']:10.3f} {t['p99_ms']:8.3f} "
                    f"{budget / t['median_ms']:10.1f}x {t['median_ms'] / one:11.2f}x "
                    f"{t['separate_ms']:12.3f} {t['separate_ms'] / t['median_ms']:8.2f}x"
                )
    full8 = min(results[f"voices/512/{w}/8"]["median_ms"] for w in BANK_WEIGHTS)
    tiny16 = min(results[f"voices/128/{w}/16"]["median_ms"] for w in BANK_WEIGHTS)
    print(
        f"  targets: 8 full-size voices <= 0.32 ms per block (25x realtime): {full8:.3f} ms "
        f"({budget / full8:.1f}x) {'met' if full8 <= 0.32 else 'NOT met'}; 16 tiny voices >= 25x "
        f"realtime: {budget / tiny16:.1f}x {'met' if budget / tiny16 >= 25 else 'NOT met'}"
    )
    acc = _run(voices_accuracy_case, dict(hidden=512, gru=512))
    results["voices_accuracy"] = acc
    print(
        "  8 full-size voices (a chord, f0 and loudness moving, 200 blocks) against the torch "
        "reference (TorchVoices): "
        + "; ".join(
            f"{k} {v['snr_db']:.1f} dB SNR (largest error {v['max_err']:.1e})"
            for k, v in acc.items()
        )
    )


def voices_accuracy_case(args: dict) -> dict:
    """The voice bank's arithmetic against the batched torch reference on 8 voices: a chord
    whose f0 and loudness move, a timbre per voice, the same white noise to both."""
    import numpy as np

    from ddsp_morph.realtime.voice_bank import TorchVoices, VoiceBank

    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same untrained weights every run: a figure that reproduces
    ref = _tiny_or_full_engine(args["hidden"], args["gru"], 1)
    with torch.no_grad():  # away from the initial state: a loud, harmonic-rich output
        ref.model.decoder.head.bias.add_(2.0)
    n, v = 200, 8
    rng = np.random.default_rng(0)
    zs = rng.standard_normal((v, 16)).astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None]
    f0 = (110.0 * 2 ** (np.arange(v) * 3 / 12 + 0.5 * np.sin(t / 17.0))).astype(np.float32)
    loud = (-35.0 + 15 * np.sin(t / 23.0 + np.arange(v))).astype(np.float32)
    noise = (rng.random((n, v, HOP), dtype=np.float32) * 2 - 1).astype(np.float32)

    def play(bank) -> np.ndarray:
        for k in range(v):
            bank.set_z(k, zs[k])
            bank.slots[k] = k
        out = []
        for i in range(n):
            bank.f0_hz[:v, 0], bank.loudness_db[:v, 0] = f0[i], loud[i]
            out.append(np.array(bank.process(v, noise[i])))
        return np.concatenate(out)

    want = play(TorchVoices(ref.model, v))
    out = {}
    for name, (weights, activations) in BANK_WEIGHTS.items():
        err = play(VoiceBank(ref.model, v, weights=weights, activations=activations)) - want
        out[name] = {
            "snr_db": float(10 * np.log10(np.sum(want**2) / np.sum(err**2))),
            "max_err": float(np.abs(err).max()),
            "peak": float(np.abs(want).max()),
        }
    return out


def engine_accuracy_case(args: dict) -> dict:
    """Each compiled variant against the torch engine: 200 one-frame blocks of an f0 and
    loudness sweep with the latent fixed, the same white noise given to both."""
    torch.set_num_threads(1)
    from ddsp_morph.realtime.fast import FastEngine

    ref = _tiny_or_full_engine(args["hidden"], args["gru"], 1)
    with torch.no_grad():  # away from the initial state: a loud, harmonic-rich output
        ref.model.decoder.head.bias.add_(2.0)
    ref = type(ref)(ref.model, frames_per_block=1)
    n = 200
    t = torch.arange(n, dtype=torch.float32)
    f0 = 110.0 * 2 ** (2 * torch.sin(t / 17.0))
    loud = -35.0 + 20 * torch.sin(t / 23.0)
    z = torch.randn(16, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(n * HOP, generator=torch.Generator().manual_seed(1)) * 2 - 1
    want = torch.cat(
        [
            ref.process(f0[i : i + 1], loud[i : i + 1], z, noise[i * HOP : (i + 1) * HOP])
            for i in range(n)
        ]
    )
    out = {}
    for name, (kind, weights, tables) in ENGINES.items():
        if kind != "fast":
            continue
        e = FastEngine(ref.model, weights=weights, input_tables=tables)
        got = torch.cat(
            [
                e.process(f0[i : i + 1], loud[i : i + 1], z, noise[i * HOP : (i + 1) * HOP])
                for i in range(n)
            ]
        )
        err = got - want
        out[name] = {
            "snr_db": float(10 * torch.log10(want.square().sum() / err.square().sum())),
            "max_err": float(err.abs().max()),
            "peak": float(want.abs().max()),
        }
    return out


def resampler_delay_ms(device_rate: int = 48000) -> dict:
    """How long each streaming 16 kHz -> device-rate resampler holds a sample back beyond its
    own block: an impulse enters with the first 128-sample block; delay = the input fed before
    the impulse comes out, beyond that first block, plus the peak's position in the output."""
    import numpy as np
    import soxr

    from ddsp_morph.dsp.resample import PolyphaseUpsampler

    def measure(step) -> float:
        x = np.zeros(SR // 4, np.float32)
        x[0] = 1.0
        emitted = 0
        for i in range(0, len(x), HOP):
            y = step(x[i : i + HOP])
            if len(y) and np.abs(y).max() > 0.1:
                peak = emitted + int(np.argmax(np.abs(y)))
                return 1e3 * (i / SR + peak / device_rate)
            emitted += len(y)
        return float("nan")

    out = {"polyphase": measure(PolyphaseUpsampler(device_rate // SR).process)}
    for q in ("QQ", "HQ"):
        out[f"soxr_{q}"] = measure(
            soxr.ResampleStream(SR, device_rate, 1, dtype="float32", quality=q).resample_chunk
        )
    return out


def soak(args: dict) -> dict:
    """soak_case in its own process while a second process spins on the other core."""
    busy = mp.get_context("spawn").Process(target=_spin, args=(args["seconds"] + 30.0,))
    busy.start()
    try:
        time.sleep(1.0)  # let it start spinning
        return _run(soak_case, args)
    finally:
        busy.terminate()
        busy.join()


def _bf16_units() -> str:
    """The CPU's bfloat16 matrix/vector instructions, from /proc/cpuinfo ('none' elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":")[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    found = [x for x in ("amx_bf16", "avx512_bf16") if x in flags]
    return ", ".join(found) or "none (bfloat16 is emulated: slower than float32)"


def _run(target, *a, preload: str | None = None) -> dict:
    """target(*a) in a fresh spawned process (its own peak memory), with ``preload`` (a
    shared library, e.g. tcmalloc) in its LD_PRELOAD."""
    import os

    old = os.environ.get("LD_PRELOAD")
    if preload:
        os.environ["LD_PRELOAD"] = preload
    try:
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:
            return pool.apply(target, a)
    finally:
        if old is None:
            os.environ.pop("LD_PRELOAD", None)
        else:
            os.environ["LD_PRELOAD"] = old


def _tcmalloc() -> str | None:
    """Debian's tcmalloc (libtcmalloc-minimal4), where installed."""
    import glob

    found = sorted(glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4"))
    return found[0] if found else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--soak-seconds", type=float, default=60.0)
    p.add_argument("--voices-only", action="store_true", help="only the polyphony rows")
    p.add_argument(
        "--steps-only", action="store_true", help="only the training step against ddsp_pytorch's"
    )
    opts = p.parse_args()
    if opts.steps_only:
        results: dict = {}
        step_size = dict(batch=4, seconds=1.0) if opts.quick else dict(batch=16, seconds=4.0)
        print_matched_steps(results, step_size, 1 if opts.quick else 3)
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump(results, f, indent=2)
        return
    if opts.voices_only:
        results: dict = {}
        print_voices(results, 200 if opts.quick else 1000)
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump(results, f, indent=2)
        return
    size = dict(batch=4, seconds=1.0) if opts.quick else dict(batch=16, seconds=4.0)
    base = dict(size, n_harmonics=100, n_bands=65, ir_seconds=1.0)
    print(
        f"DSP benchmark — batch {size['batch']} x {size['seconds']} s at {SR} Hz, hop {HOP}, 100 harmonics, "
        f"65 noise bands, 1 s IR; torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    results: dict = {"size": base}
    print(
        f"\n{'case':10s} {'pass':8s} {'ours s':>9s} {'ref s':>9s} {'speed-up':>9s} {'ours MB':>9s} {'ref MB':>9s} {'mem ratio':>9s}"
    )
    for name in ("harmonic", "noise", "reverb", "stack"):
        for backward in (False, True):
            if name in ("reverb", "stack") and backward and not opts.quick:
                reps = 1  # the direct-convolution reference is slow
            else:
                reps = 3
            args = dict(base, backward=backward, reps=reps)
            ours = _run(case, name, args)
            ref = _run(case, f"{name}_ref", args)
            label = "fwd+bwd" if backward else "fwd"
            results[f"{name}/{label}"] = {"ours": ours, "ref": ref}
            print(
                f"{name:10s} {label:8s} {ours['time_s']:9.3f} {ref['time_s']:9.3f} {ref['time_s'] / ours['time_s']:8.1f}x "
                f"{ours['peak_mb']:9.0f} {ref['peak_mb']:9.0f} {ours['peak_mb'] / max(ref['peak_mb'], 1e-9):9.2f}"
            )
    args = dict(base, backward=True, reps=3, registers=True)
    grouped = _run(case, "harmonic", args)
    one = _run(case, "harmonic", dict(args, one_group=True))
    results["harmonic/registers"] = {"grouped": grouped, "one_group": one}
    print(
        f"harmonic fwd+bwd, clips in their own registers (MIDI 45-93): frames grouped by their own "
        f"audible harmonics {grouped['time_s']:.3f} s, one group (the batch's lowest pitch) "
        f"{one['time_s']:.3f} s: {one['time_s'] / grouped['time_s']:.1f}x"
    )
    enc = _run(encoder_stride_case, dict(batch=size["batch"], seconds=1.0, reps=5))
    results["encoder/frame_stride"] = enc
    print(
        f"timbre encoder fwd+bwd ({size['batch']} x 1 s, GRU 256, one thread): every frame "
        f"{enc['stride1_s']:.3f} s, every second frame (latent.frame_stride=2) "
        f"{enc['stride2_s']:.3f} s: {enc['stride1_s'] / enc['stride2_s']:.1f}x"
    )
    dp = _run(decoder_passes_case, dict(batch=size["batch"], seconds=1.0, reps=7))
    results["decoder/passes"] = dp
    print(
        f"decoder passes of one training step ({size['batch']} x 1 s + a 64-frame window with 4 z, "
        f"128/128 FiLM, fwd+bwd, one thread): one pass per z, z per frame {dp['separate_s']:.3f} s, "
        f"stacked window pass and z held per clip {dp['stacked_s']:.3f} s: "
        f"{dp['separate_s'] / dp['stacked_s']:.2f}x"
    )
    print(
        "\nFull training step (GRU 512 decoder, 100 harmonics, 65 bands, forward + loss + backward + Adam); "
        "bf16-mixed = trainer.precision=bf16-mixed (decoder in bfloat16, synth and loss float32), "
        f"CPU bfloat16 units: {_bf16_units()}"
    )
    tcmalloc = _tcmalloc()
    cases = [
        (HOP, True, "32", None),
        (HOP, True, "bf16-mixed", None),
        (160, True, "32", None),
        (160, True, "bf16-mixed", None),
    ]
    if tcmalloc:
        cases += [(HOP, True, "bf16-mixed", tcmalloc), (160, True, "bf16-mixed", tcmalloc)]
    else:
        print("  (tcmalloc not installed: apt install libtcmalloc-minimal4 adds its rows)")
    for hop, reverb, precision, preload in cases:
        r = _run(
            training_step_case,
            dict(
                size, hop=hop, reverb=reverb, precision=precision, reps=3 if not opts.quick else 1
            ),
            preload=preload,
        )
        alloc = "tcmalloc" if preload else "glibc"
        results[f"train_step/hop{hop}/reverb{int(reverb)}/{precision}/{alloc}"] = r
        print(
            f"  hop {hop:3d} ({SR // hop} frames/s), reverb {'on ' if reverb else 'off'}, precision {precision:10s}, "
            f"malloc {alloc:8s}: {r['time_s']:.2f} s/step, {size['batch'] / r['time_s']:.1f} examples/s, "
            f"peak process memory {r['peak_process_mb']:.0f} MB"
        )
    print_matched_steps(results, size, 1 if opts.quick else 3)
    print(
        "\nStreaming harmonic + noise + reverb (1 s IR, partitioned), one thread: the compiled kernels "
        "(realtime.kernels), the torch realtime kernels (dsp.stream) and the general functions block by block:"
    )
    for frames in (1, 4):
        r = _run(streaming_case, dict(block_frames=frames, n_blocks=300 if opts.quick else 2000))
        results[f"stream/{frames}"] = r
        c, o, ref = r["compiled"], r["ours"], r["general"]
        print(
            f"  block of {frames * HOP:4d} samples: compiled median {c['median_ms']:.3f} ms (p99 {c['p99_ms']:.3f}), "
            f"torch kernels {o['median_ms']:.3f} ms (p99 {o['p99_ms']:.3f}), general {ref['median_ms']:.3f} ms "
            f"(p99 {ref['p99_ms']:.3f}): compiled {ref['median_ms'] / c['median_ms']:.1f}x the general path; "
            f"realtime budget {1e3 * frames * HOP / SR:.1f} ms"
        )
    print(
        "\nRealtime engine (decoder + VAE z + harmonic + noise + 1 s reverb), one thread. torch = the "
        "reference StreamingEngine; fast = the compiled block (realtime.fast); +tables = f0/loudness "
        "branches tabulated (2048 rows); int16/int8 = integer decoder weights, one scale per row. SNR/max err: 200 blocks of a "
        "sweep against the torch engine, same noise:"
    )
    print(
        f"  {'decoder':18s} {'engine':17s} {'block':>6s} {'median ms':>10s} {'p99 ms':>8s} {'x realtime':>11s} "
        f"{'SNR dB':>7s} {'max err':>8s}"
    )
    for name, hidden, gru in (("full-size, GRU 512", 512, 512), ("tiny, GRU 128", 128, 128)):
        acc = _run(engine_accuracy_case, dict(hidden=hidden, gru=gru))
        for frames in (1, 4):
            timings = _run(
                engine_case,
                dict(
                    hidden=hidden,
                    gru=gru,
                    block_frames=frames,
                    n_blocks=200 if opts.quick else 1000,
                ),
            )
            for engine, r in timings.items():
                r.update(acc.get(engine, {}))
                results[f"engine/{gru}/{frames}/{engine}"] = r
                snr = f"{r['snr_db']:7.1f}" if "snr_db" in r else f"{'-':>7s}"
                err = f"{r['max_err']:8.1e}" if "max_err" in r else f"{'-':>8s}"
                print(
                    f"  {name:18s} {engine:17s} {frames * HOP:6d} {r['median_ms']:10.3f} {r['p99_ms']:8.3f} "
                    f"{1 / r['real_time_factor']:10.1f}x {snr} {err}"
                )
    print_voices(results, 200 if opts.quick else 1000)
    soak_args = dict(
        hidden=512,
        gru=512,
        block_frames=1,
        device_blocks=2,
        seconds=10.0 if opts.quick else opts.soak_seconds,
        engine="fast+tables int16",
    )
    r = soak(soak_args)
    results["soak"] = {**soak_args, **r}
    print(
        f"\nSoak: {soak_args['seconds']:.0f} s at realtime pace, full-size decoder ({soak_args['engine']} engine, the live default), 128-sample blocks, a 2-block device queue, "
        f"the other core kept busy: {r['xruns']} xruns in {r['blocks']} blocks (worst {r['worst_late_ms']:.2f} ms late); "
        f"compute median {r['compute_median_ms']:.2f} ms, p99 {r['compute_p99_ms']:.2f} ms, max {r['compute_max_ms']:.2f} ms"
    )
    ain = _run(audio_in_case, dict(hidden=128, gru=128))
    results["audio_in"] = ain
    hop_ms, buf_ms = 1e3 * HOP / SR, 1e3 * 512 / 48000
    print("\nAudio in and host exports (one thread, 128/128 decoder, untrained weights):")
    print(f"  {'what':44s} {'ms':>8s} {'x realtime':>11s} {'vs reference':>14s}")
    rows = [
        ("tracker per 8-ms hop: YIN + loudness (default)", ain["yin_follower_ms_per_hop"], hop_ms, ain["pesto_ms_per_hop"], "PESTO"),
        ("tracker per 8-ms hop: PESTO streaming", ain["pesto_ms_per_hop"], hop_ms, ain["pesto_ms_per_hop"], "PESTO"),
        ("48 -> 16 kHz downsampler per hop", ain["downsampler_ms_per_hop"], hop_ms, None, ""),
        ("audio-in hop: YIN + downsampler + fast engine", ain["yin_follower_ms_per_hop"] + ain["downsampler_ms_per_hop"] + ain["fast_engine_ms_per_hop"], hop_ms, None, ""),
        ("nn~ forward per 512 samples at 48 kHz", ain["nn_tilde_forward_ms_per_512"], buf_ms, ain["fast_engine_ms_per_hop"] * 512 / 384, "fast engine"),
        ("nn~ audio per 512 samples at 48 kHz", ain["nn_tilde_audio_ms_per_512"], buf_ms, ain["fast_engine_ms_per_hop"] * 512 / 384, "fast engine"),
    ]  # fmt: skip
    for name, ms, span, ref_ms, ref_name in rows:
        ratio = f"{ms / ref_ms:6.2f}x {ref_name}" if ref_ms else ""
        print(f"  {name:44s} {ms:8.3f} {span / ms:10.1f}x {ratio:>14s}")
    delays = resampler_delay_ms()
    delay = delays["polyphase"]
    tiny = results["engine/128/1/fast+tables int16"]  # the live default engine
    results["midi_latency_ms"] = {
        "block_wait_max": 1e3 * HOP / SR,
        "block_wait_mean": 0.5e3 * HOP / SR,
        "compute_median": tiny["median_ms"],
        "resampler_delay": delays,
    }
    print(
        "\nStreaming 16 -> 48 kHz resampler delay beyond its block: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in delays.items())
    )
    print(
        f"\nMIDI message -> first audio sample (headless path, tiny model, 1-frame blocks): wait for the next block "
        f"0-{1e3 * HOP / SR:.0f} ms (mean {0.5e3 * HOP / SR:.0f}) + compute {tiny['median_ms']:.2f} ms + 16->48 kHz polyphase delay "
        f"{delay:.2f} ms = {0.5e3 * HOP / SR + tiny['median_ms'] + delay:.1f} ms mean, {1e3 * HOP / SR + tiny['p99_ms'] + delay:.1f} ms worst "
        "(plus the audio device's own buffer)"
    )
    poly = results["voices/128/int16x16/8"]  # the live default: 8 voices, the default decoder size
    results["midi_latency_ms"]["compute_median_8_voices"] = poly["median_ms"]
    print(
        f"  with 8 voices sounding (VoiceBank, tiny model, int16 x int16): compute {poly['median_ms']:.2f} ms "
        f"(p99 {poly['p99_ms']:.2f}): {0.5e3 * HOP / SR + poly['median_ms'] + delay:.1f} ms mean, "
        f"{1e3 * HOP / SR + poly['p99_ms'] + delay:.1f} ms worst"
    )
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
