"""The timbre latent: MFCC against librosa, encoder modes, KL with free bits and warm-up, a VAE
run that writes its monitoring PNGs and stores centroids with its checkpoint."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ddsp_morph.config import validate_config
from ddsp_morph.dsp.core import hz_to_midi
from ddsp_morph.models.encoder import MFCC, TimbreEncoder, beta_at, kl_loss, kl_per_dim
from ddsp_morph.runs import load_run

from .conftest import cfg_for


def test_mfcc_matches_librosa():
    import librosa

    sr, hop = 16000, 128
    t = np.arange(sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1330 * t)).astype(np.float32)
    y += 0.01 * np.random.default_rng(0).standard_normal(sr).astype(np.float32)
    n_frames = len(y) // hop
    ours = MFCC(sample_rate=sr, hop_length=hop, n_mels=64, n_mfcc=20)(
        torch.from_numpy(y)[None], n_frames
    )[0]
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=1024, hop_length=hop, n_mels=64, fmin=20.0, pad_mode="constant"
    )
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=20)[:, :n_frames].T
    scaled = ours.numpy() * 10 / math.log(10)
    assert scaled.shape == ref.shape
    np.testing.assert_allclose(scaled, ref, rtol=1e-3, atol=0.05)


@pytest.mark.parametrize("variational", [True, False])
def test_encoder_modes(variational: bool):
    audio = torch.randn(3, 64 * 128)
    pooled = TimbreEncoder(z_dim=5, gru_size=16, variational=variational, pooled=True)
    out = pooled(audio, 64)
    assert out["z"].shape == (3, 64, 5) and out["mu"].shape == (3, 1, 5)
    assert torch.equal(out["z"][:, 0], out["z"][:, -1])  # one timbre vector per clip
    frame = TimbreEncoder(z_dim=5, gru_size=16, variational=variational, pooled=False).eval()
    z = frame(audio, 64)["z"]
    assert z.shape == (3, 64, 5) and not torch.allclose(z[:, 0], z[:, -1])
    pooled.train()
    a, b = pooled(audio, 64)["z"], pooled(audio, 64)["z"]
    assert torch.equal(a, b) != variational  # the VAE samples in training, the AE does not
    pooled.eval()
    assert torch.equal(pooled(audio, 64)["z"], pooled(audio, 64)["z"])  # posterior mean at eval


def test_kl_free_bits_and_warmup():
    mu = torch.ones(2, 7, 4)
    logvar = torch.zeros(2, 7, 4)
    kl = kl_per_dim(mu, logvar)
    torch.testing.assert_close(kl, torch.full((4,), 0.5))
    assert float(kl_per_dim(torch.zeros(1, 1, 3), torch.zeros(1, 1, 3)).sum()) == 0.0
    assert float(kl_loss(torch.tensor([0.1, 2.0]), free_bits=0.5)) == pytest.approx(2.5)
    assert float(kl_loss(torch.tensor([0.1, 2.0]))) == pytest.approx(2.1)
    assert beta_at(0, 0.1, 100) == 0.0 and beta_at(50, 0.1, 100) == pytest.approx(0.05)
    assert beta_at(500, 0.1, 100) == 0.1 and beta_at(0, 0.1, 0) == 0.1


def test_vae_run_monitors_the_latent_and_stores_centroids(tiny_corpus: Path, tmp_path: Path):
    from ddsp_morph.training.fit import train

    cfg = cfg_for(
        tiny_corpus,
        tmp_path,
        "latent=vae",
        "latent.z_dim=4",
        "latent.encoder_gru_size=16",
        "latent.beta_warmup_steps=2",
        "latent.monitor_every_n_epochs=2",
        "data.train_instruments=all",
        "trainer.max_steps=4",
        "trainer.check_val_every_n_epoch=2",
        "n_audio_examples=1",
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["val/loss"]) and "latent/active_units" in metrics
    assert metrics["train/beta"] > 0
    pngs = sorted(p.name for p in (tmp_path / "latent").glob("latent_step*.png"))
    # Validation every 2 epochs (1 step each), the monitor every 2 epochs, and the final map.
    assert pngs == ["latent_step000002.png", "latent_step000004.png"]
    assert (tmp_path / "latent" / pngs[0]).stat().st_size > 10_000
    run = load_run(tmp_path, checkpoint="last")
    latent = run.extra["latent"]
    assert sorted(latent["centroids"]) == ["flute", "violin"] and latent["step"] == 4
    assert len(latent["centroids"]["flute"]) == 4 and len(latent["pca_components"]) == 2
    # A z given in the batch replaces the encoder: the same controls, two timbres, two sounds.
    n = 32
    batch = {"f0_hz": torch.full((1, n), 440.0), "loudness_db": torch.full((1, n), -20.0)}
    a = run.model({**batch, "z": torch.tensor([latent["centroids"]["flute"]])})["audio"]
    b = run.model({**batch, "z": torch.tensor([latent["centroids"]["violin"]])})["audio"]
    assert a.shape == (1, n * 128) and not torch.allclose(a, b)


def test_kl_matches_the_closed_form_of_torch_distributions():
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(4, 9, 6, generator=g), torch.randn(4, 9, 6, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)),
    )
    torch.testing.assert_close(kl_per_dim(mu, logvar), ref.reshape(-1, 6).mean(0))


def test_gradients_flow_through_the_reparameterization():
    enc = TimbreEncoder(z_dim=3, gru_size=8, variational=True, pooled=True).train()
    out = enc(torch.randn(2, 16 * 128), 16)
    out["z"].pow(2).sum().backward()  # a loss on the sampled z only
    grads = {n: p.grad for n, p in enc.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), [
        n for n, g in grads.items() if g is None or g.abs().sum() == 0
    ]


def test_under_bf16_autocast_only_the_networks_run_in_bf16():
    from ddsp_morph.models.autoencoder import DDSPAutoencoder
    from ddsp_morph.models.decoder import Decoder
    from ddsp_morph.synths.stack import SynthStack

    torch.manual_seed(0)
    synth = SynthStack(sample_rate=16000, hop_length=128, n_harmonics=20, n_noise_bands=17)
    enc = TimbreEncoder(z_dim=4, gru_size=16)
    dec = Decoder(
        input_sizes={"f0": 1, "loudness": 1, "z": 4},
        output_sizes=synth.control_sizes,
        hidden_size=32,
        gru_size=32,
    )
    model = DDSPAutoencoder(
        decoder=dec, synth=synth, conditioning=["f0", "loudness"], encoder=enc
    ).eval()
    g = torch.Generator().manual_seed(1)
    batch = {
        "f0_hz": 200 + 100 * torch.rand(2, 20, generator=g),
        "loudness_db": -30 + 5 * torch.randn(2, 20, generator=g),
        "audio": 0.1 * torch.randn(2, 20 * 128, generator=g),
    }
    with torch.no_grad():
        ref = model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)
    for k in ("audio", "amplitude", "harmonic_distribution", "noise_magnitudes", "mu"):
        assert out[k].dtype == torch.float32, k
    # bf16 decoder weights/activations: close to the float32 model, not equal to it
    rel = (out["audio"] - ref["audio"]).norm() / ref["audio"].norm()
    assert 0 < float(rel) < 0.1
    torch.testing.assert_close(out["mu"], ref["mu"])  # the encoder runs in float32


def test_interpolation_endpoints_are_the_stored_centroids(tiny_run: Path):
    from ddsp_morph.latent.geometry import centroids_of, path_points

    cents = centroids_of(load_run(tiny_run, checkpoint="last"))
    for kind in ("linear", "slerp"):
        zs = path_points(cents["violin"], cents["flute"], 7, kind)
        np.testing.assert_allclose(zs[0], cents["violin"], atol=1e-6)
        np.testing.assert_allclose(zs[-1], cents["flute"], atol=1e-6)


def test_unknown_instrument_lists_the_known_ones(tiny_run: Path, tiny_corpus: Path):
    from ddsp_morph.build import build_datamodule, feature_settings
    from ddsp_morph.errors import DDSPMorphError
    from ddsp_morph.evaluation.latent_eval import convert

    run = load_run(tiny_run, checkpoint="last")
    dm = build_datamodule(run.cfg)
    dm.setup("test")
    with pytest.raises(DDSPMorphError, match=r"'cello'.*\['flute', 'violin'\]"):
        convert(
            run,
            dm.datasets["test"].items[0],
            "cello",
            classifier=None,
            settings=feature_settings(run.cfg),
        )


def _film_pair(hidden: int = 32):
    """A concat decoder and a film decoder with the same shared weights."""
    from ddsp_morph.models.decoder import Decoder

    kw = dict(
        input_sizes={"f0": 1, "loudness": 1, "z": 4},
        output_sizes={"amplitude": 1, "harmonic_distribution": 8, "noise_magnitudes": 5},
        hidden_size=hidden,
        gru_size=hidden,
    )
    torch.manual_seed(0)
    concat = Decoder(**kw, z_mode="concat")
    film = Decoder(**kw, z_mode="film")
    film.load_state_dict(concat.state_dict(), strict=False)
    return concat, film


def _decoder_inputs(n: int = 12, z_dim: int = 4):
    g = torch.Generator().manual_seed(3)
    return {
        "f0": torch.rand(2, n, 1, generator=g),
        "loudness": torch.randn(2, n, 1, generator=g),
        "z": torch.randn(2, 1, z_dim, generator=g).expand(-1, n, -1),
    }


def test_film_decoder_starts_as_the_concat_decoder_and_its_z_paths_are_affine():
    concat, film = _film_pair()
    inputs = _decoder_inputs()
    with torch.no_grad():
        a, b = concat(inputs), film(inputs)
    for k in a:  # FiLM and the timbre path start at zero
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    with torch.no_grad():
        for p in (*film.film.parameters(), *film.timbre.parameters()):
            p.copy_(torch.randn_like(p) * 0.1)
        z = torch.randn(3, 4)
        gamma, beta, offset = film.film_params(z)
        assert gamma.shape == (3, 3, 32) and beta.shape == (3, 3, 32) and offset.shape == (3, 14)
        # affine in z: the midpoint's parameters are the mean of the ends' (a straight path
        # in z moves every modulation evenly)
        mid = film.film_params(0.5 * (z[0] + z[1]))
        ends = [film.film_params(z[i]) for i in (0, 1)]
        for got, e0, e1 in zip(mid, *ends, strict=True):
            torch.testing.assert_close(got, 0.5 * (e0 + e1), atol=1e-6, rtol=1e-5)


def test_film_decoder_cannot_ignore_z():
    """With z's input MLP silenced, the concat decoder's output no longer depends on z; the
    film decoder's still does, and the loss's gradient reaches the film and timbre weights."""
    concat, film = _film_pair()
    with torch.no_grad():
        for dec in (concat, film):
            for p in dec.input_mlps["z"].parameters():
                p.zero_()
        for p in (*film.film.parameters(), *film.timbre.parameters()):
            p.copy_(torch.randn_like(p) * 0.1)
    inputs = _decoder_inputs()
    other = dict(inputs, z=-inputs["z"])
    with torch.no_grad():
        c0, c1 = concat(inputs), concat(other)
        f0, f1 = film(inputs), film(other)
    for k in c0:
        torch.testing.assert_close(c0[k], c1[k], atol=1e-6, rtol=0)
        assert (f0[k] - f1[k]).abs().max() > 1e-3, k
    film.zero_grad()
    loss = sum(v.square().mean() for v in film(inputs).values())
    loss.backward()
    assert film.film.weight.grad.abs().sum() > 0
    assert film.timbre.weight.grad.abs().sum() > 0


def test_a_held_z_and_tiled_rows_decode_as_the_inputs_written_out_frame_by_frame_and_row_by_row():
    """The decoder runs a z that holds over the frames through its MLP once per clip, and tiles
    an input given for fewer rows: the outputs and every gradient equal those of the same
    inputs materialized (a contiguous z per frame, the performance repeated per row)."""
    _, film = _film_pair()
    with torch.no_grad():
        for p in (*film.film.parameters(), *film.timbre.parameters()):
            p.copy_(torch.randn_like(p) * 0.1)
    base = _decoder_inputs()
    z = torch.randn(6, 1, 4, requires_grad=True)  # three z per clip of the 2-row performance
    short = {"f0": base["f0"], "loudness": base["loudness"], "z": z.expand(-1, 12, -1)}
    full = {
        "f0": base["f0"].repeat(3, 1, 1),
        "loudness": base["loudness"].repeat(3, 1, 1),
        "z": z.expand(-1, 12, -1).contiguous(),
    }
    grads, outputs = [], []
    for inputs in (short, full):
        film.zero_grad()
        z.grad = None
        out = film(inputs)
        assert out["amplitude"].shape == (6, 12, 1)
        sum(
            (v * torch.arange(v.numel()).reshape(v.shape).sin()).sum() for v in out.values()
        ).backward()
        grads.append([z.grad.clone(), *(p.grad.clone() for p in film.parameters())])
        outputs.append({k: v.detach() for k, v in out.items()})
    for k, v in outputs[1].items():
        torch.testing.assert_close(outputs[0][k], v, atol=1e-6, rtol=1e-5)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="rows"):
        film({**short, "z": torch.randn(5, 1, 4)})  # 5 rows do not tile 2


def test_z_mode_is_checked():
    from ddsp_morph.models.decoder import Decoder

    with pytest.raises(ValueError, match="z_mode"):
        Decoder(input_sizes={"f0": 1, "z": 2}, output_sizes={"amplitude": 1}, z_mode="add")


def two_instrument_batch(n: int) -> dict[str, torch.Tensor]:
    """Four clips of n frames, instruments 0, 1, 0, 1 (noise audio, one f0, rising loudness)."""
    return {
        "f0_hz": torch.full((4, n), 220.0),
        "loudness_db": torch.linspace(-50, -20, n).repeat(4, 1),
        "audio": torch.randn(4, n * 128) * 0.1,
        "instrument_id": torch.tensor([0, 1, 0, 1]),
    }


@pytest.mark.parametrize("window_frames", [0, 16])
def test_path_evenness_is_zero_for_a_decoder_blind_to_z_and_trains_the_film_path(
    tmp_path: Path, window_frames: int
):
    from ddsp_morph.build import build_model
    from ddsp_morph.training.module import DDSPModule

    model = build_model(cfg_for(tmp_path, tmp_path), n_instruments=2)
    module = DDSPModule(
        model, optimizer=lambda p: torch.optim.Adam(p), path_weight=1.0, window_frames=window_frames
    )
    n = 40
    seen: list[tuple[int, int]] = []
    model.decoder.register_forward_pre_hook(
        lambda _m, args: seen.append((args[0]["f0"].shape[1], args[0]["z"].shape[0]))
    )
    batch = two_instrument_batch(n)
    out = model(batch)
    # FiLM and the timbre path start at zero: the decoder hears z only through its input MLP,
    # which bends; once everything is affine in z (no input MLP on z), the midpoint is even
    cut = module._window(n)
    controls = module.window_controls(out, batch, cut, conversion=False)
    value = module.path_evenness(out, batch, cut, controls)

    def rep(c):
        return torch.cat([torch.log(c[k] + 1e-5) for k in sorted(c)], dim=-1)

    own = rep({k: out[k] for k in model.synth.control_sizes} if cut is None else controls["own"])
    expected = torch.mean((rep(controls["mid"]) - 0.5 * (own + rep(controls["other"]))) ** 2)
    assert torch.allclose(value, expected)  # the mean squared distance of the midpoint's controls
    assert float(value) > 1e-8  # the input MLP on z bends the path: the midpoint is not even
    with torch.no_grad():
        for p in model.decoder.input_mlps["z"].parameters():
            p.zero_()
        for p in (*model.decoder.film.parameters(), *model.decoder.timbre.parameters()):
            p.zero_()
    out = model(batch)
    assert float(module.path_evenness(out, batch, module._window(n))) < 1e-10
    with torch.no_grad():
        for p in (*model.decoder.film.parameters(), *model.decoder.timbre.parameters()):
            p.copy_(torch.randn_like(p) * 0.3)
    out = model(batch)
    seen.clear()
    value = module.path_evenness(out, batch, module._window(n))
    assert float(value) > 1e-6  # FiLM is affine in z, the network after it is not
    # one more decoder pass, its rows stacked: the whole crop with the other clip's z and the
    # midpoint (2 x 4 rows); a window: over that window only, with the clip's own z too (3 x 4)
    assert seen == ([(n, 8)] if window_frames == 0 else [(window_frames, 12)])
    value.backward()
    assert model.decoder.film.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("window_frames", [0, 16])
def test_the_stacked_window_pass_equals_one_decoder_pass_per_z(tmp_path: Path, window_frames: int):
    """window_controls decodes the own / other / midpoint / conversion z in one pass; each part
    equals the decoder run on that z alone, and only the conversion's z is held fixed."""
    from ddsp_morph.build import build_model
    from ddsp_morph.training.module import DDSPModule

    torch.manual_seed(0)
    model = build_model(cfg_for(tmp_path, tmp_path), n_instruments=2)
    with torch.no_grad():
        for p in (*model.decoder.film.parameters(), *model.decoder.timbre.parameters()):
            p.copy_(torch.randn_like(p) * 0.3)
    module = DDSPModule(model, optimizer=lambda p: torch.optim.Adam(p), window_frames=window_frames)
    n = 40
    batch = two_instrument_batch(n)
    out = model(batch)
    cut = module._window(n)
    got = module.window_controls(out, batch, cut)
    z = out["z"][:, :1]
    other = z[[3, 0, 1, 2]]
    want = {"other": other, "mid": 0.5 * (z + other), "conversion": other}
    if cut is not None:
        want["own"] = z
    assert sorted(got) == sorted(want)
    inputs = module._windowed_inputs(batch, cut)
    frames = n if cut is None else window_frames
    for name, zz in want.items():
        raw = model.decoder({**inputs, "z": zz.expand(-1, frames, -1).contiguous()})
        alone = model.synth.get_controls(raw)
        for k, v in alone.items():
            torch.testing.assert_close(got[name][k], v, atol=1e-6, rtol=1e-5)
    assert got["conversion"]["amplitude"].requires_grad
    g = torch.autograd.grad(
        got["conversion"]["amplitude"].sum(), out["mu"], allow_unused=True, retain_graph=True
    )[0]
    assert g is None or float(g.abs().sum()) == 0.0  # the conversion's z is held fixed
    g = torch.autograd.grad(got["other"]["amplitude"].sum(), out["mu"], allow_unused=True)[0]
    assert g is not None and float(g.abs().sum()) > 0  # the path's z trains the encoder


def test_timbre_cycle_trains_the_decoder_towards_the_target_z_and_leaves_the_encoder(
    tmp_path: Path,
):
    from ddsp_morph.build import build_model
    from ddsp_morph.training.module import DDSPModule

    model = build_model(cfg_for(tmp_path, tmp_path), n_instruments=2)
    module = DDSPModule(
        model, optimizer=lambda p: torch.optim.Adam(p), cycle_weight=1.0, window_frames=16
    )
    n = 40
    batch = two_instrument_batch(n)
    out = model(batch)
    value = module.timbre_cycle(out, batch, module._window(n))
    assert value.dim() == 0 and float(value) > 0
    value.backward()
    assert all(p.grad is None for p in model.encoder.parameters())  # the encoder is the judge
    assert model.decoder.timbre.weight.grad.abs().sum() > 0  # the decoder learns from it
    # an encoder that hears nothing finds its head's bias whatever is played: the term is the
    # mean squared distance from there to the target clips' posterior means
    with torch.no_grad():
        model.encoder.head.weight.zero_()
        bias_mu = model.encoder.head.bias[: model.encoder.z_dim].clone()
        shift = torch.randn(4, 1, model.encoder.z_dim)
        out = model(batch)
    out["mu"] = bias_mu + shift
    value = module.timbre_cycle(out, batch, None)
    assert float(value) == pytest.approx(float(shift.square().mean()), rel=1e-4)


def test_the_cycle_by_instrument_is_the_cross_entropy_under_the_prior_components(
    tmp_path: Path,
):
    """cycle_class: a re-encoding at the target's prior mean costs almost nothing, one at
    another instrument's mean a lot, one halfway ln 2; the means are held fixed; with the
    weight from the config the train objective adds the term and trains the decoder only."""
    from ddsp_morph.build import build_model
    from ddsp_morph.training.setup import build_module

    cfg = cfg_for(tmp_path, tmp_path)
    cfg.latent.cycle_class_weight = 2.0
    model = build_model(cfg, n_instruments=2)
    module = build_module(cfg, model)
    assert module.cycle_class_weight == 2.0
    m = model.encoder.prior_mean.detach()
    target = torch.tensor([0, 1])
    at_target = module.cycle_class(m.clone(), target)
    at_other = module.cycle_class(m.flip(0).clone(), target)
    halfway = module.cycle_class(0.5 * (m[:1] + m[1:]).repeat(2, 1), target)
    d2 = float(((m[0] - m[1]) ** 2).sum())  # prior_std 1: the logit gap is d^2 / 2
    assert float(at_target) == pytest.approx(math.log1p(math.exp(-d2 / 2)), rel=1e-3)
    assert float(at_other) == pytest.approx(d2 / 2 + math.log1p(math.exp(-d2 / 2)), rel=1e-4)
    assert float(halfway) == pytest.approx(math.log(2.0), rel=1e-5)
    found = m.flip(0).clone().requires_grad_(True)
    module.cycle_class(found, target).backward()
    assert model.encoder.prior_mean.grad is None  # the components are the judge here
    assert float(found.grad.abs().sum()) > 0
    # in the objective: the decoder learns from it, the encoder does not
    batch = two_instrument_batch(40)
    module.path_weight = module.cycle_weight = 0.0
    module.fluctuation_weight = 0.0
    module.beta_warmup_steps = 0  # no trainer: step 0, past the ramp
    out = model(batch)
    module.objective(out, batch, "train").backward()
    with_term = float(model.decoder.timbre.weight.grad.abs().sum())
    model.zero_grad()
    module.cycle_class_weight = 0.0
    out = model(batch)
    module.objective(out, batch, "train").backward()
    without = float(model.decoder.timbre.weight.grad.abs().sum())
    assert with_term != pytest.approx(without, rel=1e-3)


def test_the_fluctuation_term_adds_its_weight_times_the_loss_and_comes_from_the_config(
    tmp_path: Path,
):
    from ddsp_morph.build import build_model
    from ddsp_morph.dsp.spectral import fluctuation_loss
    from ddsp_morph.training.module import FLUCTUATION_FFT
    from ddsp_morph.training.setup import build_module

    cfg = cfg_for(tmp_path, tmp_path)
    cfg.model.loss.fluctuation_weight = 2.0
    model = build_model(cfg, n_instruments=2)
    module = build_module(cfg, model)
    assert module.fluctuation_weight == 2.0
    batch = two_instrument_batch(40)
    out = model(batch)
    module.path_weight = module.cycle_weight = 0.0  # their random windows aside
    with_term = module.objective(out, batch, "train")
    valid = module.objective(out, batch, "valid")
    module.fluctuation_weight = 0.0
    got = with_term - module.objective(out, batch, "train")
    assert float(valid) == float(module.objective(out, batch, "valid"))  # val/loss: without it
    want = 2.0 * fluctuation_loss(
        out["audio"], batch["audio"], module.fluctuation_basis, hop=FLUCTUATION_FFT // 4
    )
    assert float(want) > 0
    assert float(got) == pytest.approx(float(want), rel=1e-4)
    assert "fluctuation_basis" not in module.state_dict()  # rebuilt from the config, not stored


def test_the_conversion_fluctuation_pulls_each_conversion_to_its_timbre_clips_movement(
    tmp_path: Path,
):
    from ddsp_morph.build import build_model
    from ddsp_morph.dsp.spectral import band_fluctuation
    from ddsp_morph.training.module import FLUCTUATION_FFT
    from ddsp_morph.training.setup import build_module

    cfg = cfg_for(tmp_path, tmp_path)
    cfg.model.loss.conversion_fluctuation_weight = 2.0
    cfg.model.loss.fluctuation_weight = 0.0  # the bands are there for this term alone too
    torch.manual_seed(0)
    model = build_model(cfg, n_instruments=2)
    module = build_module(cfg, model)
    assert module.conversion_fluctuation_weight == 2.0 and module.fluctuation_weight == 0.0
    n, hop = 40, model.synth.hop_length
    batch = two_instrument_batch(n)
    # the timbre clips: one steady (a sine), one moving (noise bursts, 8 ms on, 8 ms off)
    t = torch.arange(n * hop) / 16000
    steady = 0.1 * torch.sin(2 * torch.pi * 220 * t)
    moving = torch.randn(n * hop) * 0.1 * (torch.arange(n * hop) // 128 % 2)
    batch["audio"] = torch.stack([steady, moving, steady, moving])
    out = model(batch)
    cut = slice(8, 32)
    audio, other = module.conversion_render(out, batch, cut)
    assert audio.shape == (4, 24 * hop) and other.tolist() == [3, 0, 1, 2]
    value = module.conversion_fluctuation(out, batch, cut, (audio, other))
    fl_hop = FLUCTUATION_FFT // 4
    got = band_fluctuation(
        audio, module.fluctuation_basis, hop=fl_hop, reference=batch["audio"][:, 8 * hop : 32 * hop]
    )
    want = band_fluctuation(batch["audio"][other], module.fluctuation_basis, hop=fl_hop)
    assert float(value) == pytest.approx(float((got - want).abs().mean()), rel=1e-4)
    # the targets differ row by row as the timbre clips do: the moving clip's movement is asked
    # of the rows played with its z
    assert float(want[[0, 2]].mean()) > 2 * float(want[[1, 3]].mean())
    value.backward()
    assert all(p.grad is None for p in model.encoder.parameters())  # z is held fixed
    assert model.decoder.timbre.weight.grad.abs().sum() > 0  # the decoder learns from it
    # in the objective: its weight times the term, in training only (ramped with beta's warm-up)
    module.path_weight = module.cycle_weight = 0.0
    module.beta_warmup_steps = 0
    torch.manual_seed(1)
    total = module.objective(out, batch, "train")
    module.conversion_fluctuation_weight = 0.0
    assert float(total - module.objective(out, batch, "train")) > 0


def test_a_pitch_aware_encoder_reads_f0_and_asks_for_it(tmp_path: Path):
    from ddsp_morph.build import build_model

    torch.manual_seed(0)
    audio = torch.randn(2, 32 * 128) * 0.1
    low, high = torch.full((2, 32), 220.0), torch.full((2, 32), 880.0)
    enc = TimbreEncoder(z_dim=4, gru_size=8, pitch_input=True).eval()
    assert enc.gru.input_size == 31
    a, b = enc(audio, 32, low)["mu"], enc(audio, 32, high)["mu"]
    assert not torch.allclose(a, b)  # the same MFCCs in another register: another z
    with pytest.raises(ValueError, match="f0_hz"):
        enc(audio, 32)
    with pytest.raises(ValueError, match="f0_hz"):
        enc(audio, 32, low[:, :10])
    plain = TimbreEncoder(z_dim=4, gru_size=8).eval()
    torch.testing.assert_close(plain(audio, 32, low)["mu"], plain(audio, 32, high)["mu"])
    # from the config, through the model: the batch's f0 reaches the encoder
    cfg = cfg_for(tmp_path, tmp_path)
    cfg.latent.pitch_input = True
    model = build_model(cfg, n_instruments=2).eval()
    assert model.encoder.pitch_input
    batch = two_instrument_batch(40)
    mu = model(batch)["mu"]
    batch["f0_hz"] = batch["f0_hz"] * 2
    assert not torch.allclose(mu, model(batch)["mu"])
    torch.testing.assert_close(
        model.encode(batch["audio"], 40, batch["f0_hz"]), model(batch)["mu"].mean(dim=1)
    )


def test_even_alphas_space_the_path_by_its_timbre_change_and_read_backwards():
    from ddsp_morph.latent.geometry import even_alphas, path_points, speed_between

    grid = np.linspace(0, 1, 17)
    speed = grid**2 * (3 - 2 * grid)  # the timbre changes fastest in the middle
    alphas = even_alphas(np.linspace(0, 1, 11), speed)
    got = np.interp(alphas, grid, speed)  # the change reached at each warped alpha
    np.testing.assert_allclose(got, np.linspace(0, 1, 11), atol=1e-9)
    assert alphas[5] == pytest.approx(0.5) and alphas[1] > 0.1  # dwells less where it is slow
    np.testing.assert_array_equal(even_alphas(np.linspace(0, 1, 5), None), np.linspace(0, 1, 5))
    flat = np.zeros(17)  # a model whose timbre never moves: no warp
    np.testing.assert_array_equal(even_alphas(np.linspace(0, 1, 5), flat), np.linspace(0, 1, 5))
    # the reverse path: the same points, walked the other way
    latent = {"path_speed": {"slerp": {"a>b": speed.tolist()}}}
    za, zb = np.array([3.0, 0.0, 1.0]), np.array([0.0, 2.0, -1.0])
    fwd = path_points(za, zb, 11, "slerp", speed_between(latent, "a", "b", "slerp"))
    back = path_points(zb, za, 11, "slerp", speed_between(latent, "b", "a", "slerp"))
    np.testing.assert_allclose(back[::-1], fwd, atol=1e-9)
    assert speed_between(latent, "a", "b", "linear") is None
    assert speed_between(None, "a", "b", "slerp") is None


def test_path_speeds_are_stored_with_the_latent_and_steer_the_realtime_morph(tmp_path: Path):
    from ddsp_morph.build import build_model
    from ddsp_morph.latent.geometry import path_points
    from ddsp_morph.latent.speeds import SPEED_POINTS, path_speeds
    from ddsp_morph.latent.summary import latent_summary
    from ddsp_morph.realtime.performer import LatentMap, PerformerSettings

    torch.manual_seed(0)
    model = build_model(cfg_for(tmp_path, tmp_path), n_instruments=3)
    with torch.no_grad():  # a decoder that hears z through its timbre path
        model.decoder.timbre.weight.copy_(torch.randn_like(model.decoder.timbre.weight))
    n = 60
    batch = two_instrument_batch(n)
    items = [
        {
            "audio": batch["audio"][i],
            "f0_hz": batch["f0_hz"][i] * (1 + i % 3),
            "loudness_db": batch["loudness_db"][i],
            "instrument_id": torch.tensor(i % 3),
        }
        for i in range(3)
    ]

    class Items:
        def __init__(self, items):
            self.items = items

        def __len__(self):
            return len(self.items)

    names = ["cello", "flute", "oboe"]
    summary = latent_summary(model, Items(items), names, step=7)
    speeds = summary["path_speed"]["slerp"]
    assert sorted(speeds) == [f"{a}>{b}" for a in names for b in names if a != b]
    for u in speeds.values():
        assert len(u) == SPEED_POINTS and u[0] == 0.0 and u[-1] == pytest.approx(1.0)
        assert np.all(np.diff(u) >= 0)
    # A -> B is walked by A's performances: flute's clip moves flute's paths only
    moved = [dict(it) for it in items]
    moved[1]["f0_hz"] = moved[1]["f0_hz"] * 1.7
    again = path_speeds(model, Items(moved), names, summary["centroids"])
    for key, u in again.items():
        if key.startswith("flute>"):
            assert not np.allclose(u, speeds[key], atol=1e-4), key
        else:
            np.testing.assert_allclose(u, speeds[key], atol=1e-6, err_msg=key)
    # and by its first `clips` clips: a second cello clip counts with clips=2, not with 1
    second = {**items[0], "f0_hz": items[0]["f0_hz"] * 2.3}
    one = path_speeds(model, Items([*items, second]), names, summary["centroids"], clips=1)
    two = path_speeds(model, Items([*items, second]), names, summary["centroids"], clips=2)
    np.testing.assert_allclose(one["cello>oboe"], speeds["cello>oboe"], atol=1e-6)
    assert not np.allclose(two["cello>oboe"], one["cello>oboe"], atol=1e-4)
    np.testing.assert_allclose(two["oboe>cello"], one["oboe>cello"], atol=1e-6)
    with pytest.raises(ValueError, match="clips"):
        path_speeds(model, Items(items), names, summary["centroids"], clips=0)
    # a decoder blind to z: no timbre change anywhere, the straight ramp
    with torch.no_grad():
        for p in (*model.decoder.input_mlps["z"].parameters(), *model.decoder.timbre.parameters()):
            p.zero_()
        for p in model.decoder.film.parameters():
            p.zero_()
    blind = path_speeds(model, Items(items), names, summary["centroids"])
    np.testing.assert_allclose(blind["cello>flute"], np.linspace(0, 1, SPEED_POINTS))
    # the mod wheel: CC1 halfway lands where the stored speeds put half the timbre change
    latent = {**summary, "path_speed": {"slerp": {"cello>flute": [0, 0.05, 0.1, 0.9, 1.0]}}}
    even = LatentMap(latent, PerformerSettings(source="cello", target="flute", path="slerp"))
    plain = LatentMap(
        latent, PerformerSettings(source="cello", target="flute", path="slerp", even=False)
    )
    za, zb = (np.asarray(summary["centroids"][k], np.float32) for k in ("cello", "flute"))
    want = path_points(za, zb, 3, "slerp", [0, 0.05, 0.1, 0.9, 1.0])[1]  # alpha 0.5
    np.testing.assert_allclose(even.z(0.5, [0, 0]).numpy(), want, atol=1e-5)
    np.testing.assert_allclose(
        plain.z(0.5, [0, 0]).numpy(), path_points(za, zb, 3, "slerp")[1], atol=1e-5
    )


def test_harmonic_levels_read_the_harmonic_envelope_whatever_the_register():
    from ddsp_morph.dsp.descriptors import harmonic_levels

    sr = 16000
    t = torch.arange(sr) / sr

    def odd_tone(f0: float) -> torch.Tensor:  # a clarinet-like tone: odd harmonics, 1/k
        return sum((1 / k) * torch.sin(2 * math.pi * f0 * k * t) for k in (1, 3, 5, 7))[None]

    levels = {}
    for f0 in (250.0, 500.0):
        got = harmonic_levels(
            odd_tone(f0), torch.full((1, 125), f0), n_harmonics=8, sample_rate=sr
        )[0, 20:-20]
        assert got.shape[-1] == 8 and float(got.max()) == 0.0
        levels[f0] = got.mean(0)
        # 1/3 and 1/5 of the fundamental: -9.5 and -14 dB (a dB of interpolation loss at most)
        torch.testing.assert_close(
            levels[f0][[2, 4]], torch.tensor([-9.5, -14.0]), atol=1.5, rtol=0
        )
        assert bool((levels[f0][[1, 3, 5]] < -40).all())  # the even harmonics are not there
    # an octave up, the same envelope (where MFCCs move); harmonics above Nyquist read the floor
    torch.testing.assert_close(levels[250.0][:7], levels[500.0][:7], atol=1.5, rtol=0)
    high = harmonic_levels(
        odd_tone(1500.0), torch.full((1, 125), 1500.0), n_harmonics=8, sample_rate=sr
    )
    assert float(high[0, 60, 5]) == -80.0  # 6 x 1500 Hz is above 8 kHz
    silent = harmonic_levels(torch.zeros(1, sr), torch.zeros(1, 125), n_harmonics=4, sample_rate=sr)
    assert bool((silent == -80.0).all())  # no f0: the floor, never NaN
    enc = TimbreEncoder(z_dim=4, gru_size=8, harmonics=8).eval()
    assert enc.gru.input_size == 30 + 8
    with pytest.raises(ValueError, match="f0_hz"):
        enc(odd_tone(250.0), 125)
    mu = enc(odd_tone(250.0), 125, torch.full((1, 125), 250.0))["mu"]
    assert torch.isfinite(mu).all()


def test_lfo_inputs_are_oscillators_at_their_rates_shared_by_every_pass_over_a_batch(
    tmp_path: Path,
):
    from ddsp_morph.build import build_model
    from ddsp_morph.errors import ConfigError
    from ddsp_morph.realtime.engine import StreamingEngine

    cfg = cfg_for(tmp_path, tmp_path)
    cfg.model.lfo_rates = [5.0, 2.5]
    model = build_model(cfg, n_instruments=2)
    assert model.decoder.input_mlps["lfo"][0].in_features == 4
    n = 250  # 2 s at 125 frames per second
    batch = two_instrument_batch(n)
    lfo = model.lfo(batch, torch.Generator().manual_seed(0))
    assert lfo.shape == (4, n, 4)
    phase = batch["lfo_phase"]  # drawn once, stored in the batch
    assert phase.shape == (4, 2) and not torch.allclose(phase[0], phase[1])
    torch.testing.assert_close(model.lfo(batch), lfo)  # a second pass: the same oscillators
    t = torch.arange(n) * 128 / 16000
    torch.testing.assert_close(
        lfo[2, :, 0], torch.sin(2 * torch.pi * (5.0 * t + phase[2, 0])), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        lfo[1, :, 3], torch.cos(2 * torch.pi * (2.5 * t + phase[1, 1])), atol=1e-4, rtol=0
    )
    # the rate is what the spectrum says: 5 Hz -> bin 10 of a 2 s window
    spec = torch.fft.rfft(lfo[0, :, 0]).abs()
    assert int(spec.argmax()) == 10
    # the decoder reads them: other phases, other output
    batch2 = {k: v for k, v in two_instrument_batch(n).items()}
    batch2["audio"] = batch["audio"]
    batch2["lfo_phase"] = (phase + 0.5) % 1.0
    model.eval()
    for lin in model.decoder.input_mlps["lfo"][0:1]:
        torch.nn.init.normal_(lin.weight)  # make the oscillators matter to an untrained decoder
    a = model({**batch, "lfo_phase": phase})["audio"]
    assert not torch.allclose(a, model(batch2)["audio"])
    # eval without a generator: phase zero, deterministic
    fresh = two_instrument_batch(n)
    model.lfo(fresh)
    assert torch.equal(fresh["lfo_phase"], torch.zeros(4, 2))
    # the realtime synth does not play them; bad rates are refused
    with pytest.raises(ValueError, match="lfo"):
        StreamingEngine(model)
    cfg.model.lfo_rates = [5.0, 0.0]
    with pytest.raises(ConfigError, match="lfo_rates"):
        validate_config(cfg)


@pytest.mark.parametrize("pooled", [True, False])
def test_an_encoder_with_a_frame_stride_reads_every_nth_frame(pooled: bool):
    torch.manual_seed(0)
    n = 33  # not a multiple of the stride: the last frame read is the model's frame 32
    audio = torch.randn(2, n * 128) * 0.1
    f0 = torch.linspace(200.0, 800.0, n).expand(2, n)
    every = TimbreEncoder(z_dim=4, gru_size=8, pooled=pooled, pitch_input=True).eval()
    second = TimbreEncoder(z_dim=4, gru_size=8, pooled=pooled, pitch_input=True, frame_stride=2)
    second.load_state_dict(every.state_dict())
    second.eval()
    # its MFCC frame j is the model's frame 2j, read at twice the hop
    torch.testing.assert_close(second.mfcc(audio, 17), every.mfcc(audio, n)[:, ::2])
    # the same weights on every second frame (audio and f0): the GRU ran over 17 frames
    x = torch.cat(
        [every.norm(every.mfcc(audio, n)), (hz_to_midi(f0) / 127.0).unsqueeze(-1)], dim=-1
    )[:, ::2]
    h, _ = every.gru(x)
    out = second(audio, n, f0)
    assert out["z"].shape == (2, n, 4)
    if pooled:
        want = every.head(h.mean(dim=1, keepdim=True)).chunk(2, dim=-1)[0]
        torch.testing.assert_close(out["mu"], want)
        assert not torch.allclose(out["mu"], every(audio, n, f0)["mu"])
    else:
        want = every.head(h).chunk(2, dim=-1)[0]  # held over the frame between
        torch.testing.assert_close(out["z"][:, ::2], want)
        torch.testing.assert_close(out["z"][:, 1::2], want[:, : n // 2])
    with pytest.raises(ValueError, match="frame_stride"):
        TimbreEncoder(frame_stride=0)


class _Items(list):
    """A list of clips that reads as a dataset (``.items``)."""

    items = property(lambda self: self)


def _timbre_model_and_clips(tmp_path: Path):
    """A tiny model whose timbre path moves the output, and four clips of two instruments."""
    from ddsp_morph.build import build_model

    torch.manual_seed(0)
    model = build_model(cfg_for(tmp_path, tmp_path), n_instruments=2)
    with torch.no_grad():
        model.decoder.timbre.weight.copy_(torch.randn_like(model.decoder.timbre.weight))
    batch = two_instrument_batch(60)
    return model, _Items({k: v[i] for k, v in batch.items()} for i in range(4))


def test_resume_checkpoints_skip_the_path_speeds_and_the_others_measure_them(tmp_path: Path):
    from types import SimpleNamespace

    from ddsp_morph.latent.speeds import path_speeds
    from ddsp_morph.training.module import DDSPModule

    model, train = _timbre_model_and_clips(tmp_path)
    module = DDSPModule(model, optimizer=lambda p: torch.optim.Adam(p), instruments=["a", "b"])
    fake = SimpleNamespace(
        training=True, global_step=5, datamodule=SimpleNamespace(datasets={"train": train})
    )
    module._trainer = fake
    # every N training steps (a resume checkpoint): centroids and axes, no speeds
    lean = module.refresh_latent_summary()
    assert lean["step"] == 5 and sorted(lean["centroids"]) == ["a", "b"]
    assert "path_speed" not in lean
    # a validation's or the final checkpoint at the same step: the speeds are added to it
    fake.training = False
    full = module.refresh_latent_summary()
    assert full["centroids"] == lean["centroids"]
    want = path_speeds(model, train, ["a", "b"], lean["centroids"])
    assert sorted(full["path_speed"]["slerp"]) == ["a>b", "b>a"]
    for key, u in want.items():
        np.testing.assert_allclose(full["path_speed"]["slerp"][key], u, atol=1e-9)
    assert module.refresh_latent_summary() is full  # once per step
    fake.global_step = 6  # a new step outside the training loop: measured with its speeds
    assert "path_speed" in module.refresh_latent_summary()
    # in the loop, at a step just validated (the best checkpoint): none either; the run adds
    # them to the best checkpoint it keeps after the fit (add_path_speeds, below)
    fake.training, fake.global_step = True, 7
    module.val_history.append((7, 1.0))
    assert "path_speed" not in module.refresh_latent_summary()


def test_add_path_speeds_completes_a_checkpoint_with_its_own_weights(tmp_path: Path):
    from ddsp_morph.build import build_model
    from ddsp_morph.latent.speeds import path_speeds
    from ddsp_morph.latent.summary import latent_summary
    from ddsp_morph.runs import add_path_speeds, load_checkpoint

    model, train = _timbre_model_and_clips(tmp_path)
    lean = latent_summary(model, train, ["a", "b"], step=3, speeds=False)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "step000003.ckpt"
    torch.save(
        {"state_dict": state, "ddsp_morph": {"latent": lean, "instruments": ["a", "b"]}}, path
    )
    want = path_speeds(model, train, ["a", "b"], lean["centroids"])
    # the model handed over has other weights: the checkpoint's own are measured
    other = build_model(cfg_for(tmp_path, tmp_path), n_instruments=2)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    assert add_path_speeds(path, other, train, ["a", "b"]) is True
    for k, v in other.state_dict().items():
        assert torch.equal(v, before[k])  # left as it was
    got = load_checkpoint(path)["ddsp_morph"]["latent"]
    assert got["centroids"] == lean["centroids"]
    for key, u in want.items():
        np.testing.assert_allclose(got["path_speed"]["slerp"][key], u, atol=1e-9)
    stamp = path.stat().st_mtime_ns
    assert add_path_speeds(path, other, train, ["a", "b"]) is False  # already there: untouched
    assert path.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_the_conversion_critic_learns_the_instruments_from_real_crops_and_judges_conversions(
    tmp_path: Path,
):
    from ddsp_morph.build import build_model
    from ddsp_morph.training.setup import build_module

    cfg = cfg_for(tmp_path, tmp_path)
    assert build_module(cfg, build_model(cfg, n_instruments=2)).critic is None  # off by default
    cfg.model.loss.conversion_critic_weight = 0.5
    with pytest.raises(ValueError, match="at least 2 instruments"):
        build_module(cfg, build_model(cfg, n_instruments=2))
    torch.manual_seed(0)
    model = build_model(cfg, n_instruments=2)
    module = build_module(cfg, model, instruments=["flute", "violin"])
    critic = module.critic
    assert critic is not None and module.conversion_critic_weight == 0.5
    assert any(n.startswith("critic.") for n, _ in module.named_parameters())  # optimized
    n, hop = 40, model.synth.hop_length
    batch = two_instrument_batch(n)
    t = torch.arange(n * hop) / 16000
    tone = 0.1 * torch.sin(2 * torch.pi * 440 * t)
    batch["audio"] = torch.stack(
        [tone, torch.randn(n * hop) * 0.1, tone * 0.5, torch.randn(n * hop) * 0.05]
    )
    # the critic alone, on the real crops: it learns to tell the tone from the noise
    opt = torch.optim.Adam(critic.parameters(), lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        learn, accuracy = critic.learn(batch["audio"], batch["instrument_id"])
        learn.backward()
        opt.step()
    assert float(accuracy) == 1.0 and float(learn.detach()) < 0.1
    assert int(critic.updates) == 30
    # a conversion is judged against the instrument of the clip whose z it was played with:
    # the real clips, each labelled as the other instrument, read as wrong
    wrong = critic.judge(batch["audio"], 1 - batch["instrument_id"])
    right = critic.judge(batch["audio"], batch["instrument_id"])
    assert float(wrong) > 2.0 > 0.1 > float(right)
    # in the objective: the critic's loss moves the critic only, the judgement the decoder only
    out = model(batch)
    cut = slice(8, 32)
    converted = module.conversion_render(out, batch, cut)
    learn, judged = module.critic_terms(batch, cut, converted)
    critic.zero_grad()
    model.zero_grad()
    judged.backward(retain_graph=True)
    assert critic.linear.weight.grad is None or float(critic.linear.weight.grad.abs().sum()) == 0
    assert all(p.grad is None for p in model.encoder.parameters())
    assert float(model.decoder.timbre.weight.grad.abs().sum()) > 0
    model.zero_grad()
    learn.backward()
    assert float(critic.linear.weight.grad.abs().sum()) > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.parameters())
    # its weight counts in training (ramped with beta's warm-up), never in val/loss
    module.path_weight = module.cycle_weight = 0.0
    module.beta_warmup_steps = 0
    critic.eval()  # the feature statistics stay put between the two objectives
    torch.manual_seed(1)
    total = module.objective(out, batch, "train")
    module.conversion_critic_weight = 0.0
    torch.manual_seed(1)
    without = module.objective(out, batch, "train")
    assert float(total - without) > 0
    assert float(module.objective(out, batch, "valid")) < float(without)
