"""Compose the real configs; every option of every group instantiates; bad values are one line."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ddsp_morph.build import build_model
from ddsp_morph.config import validate_config
from ddsp_morph.errors import ConfigError

from .conftest import REPO

CONF = REPO / "conf"
GROUPS = [
    "synth",
    "conditioning",
    "latent",
    "model",
    "trainer",
    "logger",
    "data",
    "paths",
    "debug",
    "experiment",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])


def test_the_groups_the_user_named_exist():
    assert options("synth") == ["harmonic", "harmonic_noise", "harmonic_noise_reverb"]
    assert "f0_loud" in options("conditioning") and "none" in options("latent")
    for group in GROUPS:
        assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_validates(group):
    for option in options(group):
        cfg = compose_cfg(f"{group}={option}")
        validate_config(cfg)


@pytest.mark.parametrize("synth", options("synth"))
def test_every_synth_builds_a_model_from_config_alone(synth):
    cfg = compose_cfg(f"synth={synth}", "model.hidden_size=8", "model.gru_size=8")
    model = build_model(cfg, n_instruments=2)
    heads = set(model.decoder.output_sizes)
    assert ("noise_magnitudes" in heads) == cfg.synth.noise
    assert (model.synth.reverb is not None) == cfg.synth.reverb


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.sample_rate=abc", "config data.sample_rate: expected int, got str 'abc'"),
        ("data.hop_length=0", "config data.hop_length: must be > 0, got 0"),
        ("synth.noise=3", "config synth.noise: expected bool, got int 3"),
        ("data.features.f0_fmin=20", "config data.features.f0_fmin: must be >= 32 Hz"),
        ("data.crop_seconds=-1", "config data.crop_seconds: must be >= 0.1 s, got -1"),
        ("data.crop_seconds=0.001", "config data.crop_seconds: must be >= 0.1 s, got 0.001"),
        ("trainer.precision=foo", "config trainer.precision: must be one of ['auto', '32'"),
        ("model.z_mode=add", "config model.z_mode: must be 'concat' or 'film', got 'add'"),
        ("trainer.max_minutes=0", "config trainer.max_minutes: must be > 0, got 0"),
        ("data.pitch_shift.semitones=20", "config data.pitch_shift.semitones: must be in [0, 12]"),
        (
            "data.pitch_shift.probability=2",
            "config data.pitch_shift.probability: must be in [0, 1]",
        ),
    ],
)
def test_wrong_kind_of_value_names_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_cfg(override))
    assert str(err.value).startswith(message)


def test_a_pitch_shift_with_cached_context_features_is_refused():
    from ddsp_morph.config import validate_training_config

    shift = "data.pitch_shift.semitones=2"
    validate_training_config(compose_cfg(shift))  # f0 and loudness: shifted with the audio
    validate_training_config(compose_cfg("data.gain.db=6", "conditioning=mfcc"))  # follows the gain
    with pytest.raises(ConfigError) as err:
        validate_training_config(compose_cfg(shift, "conditioning=mfcc"))
    msg = str(err.value)
    assert msg.startswith("config data.pitch_shift.semitones:") and "['mfcc']" in msg


def test_a_crop_longer_than_an_example_is_refused_for_training_only():
    from ddsp_morph.config import validate_training_config

    cfg = compose_cfg("data.crop_seconds=10")
    validate_config(cfg)  # data preparation does not read it
    with pytest.raises(ConfigError) as err:
        validate_training_config(cfg)
    msg = str(err.value)  # the crop asked for, then the problem
    key, problem = "config data.crop_" + "seconds: 10", "is longer than an example"
    assert msg.startswith(key) and problem in msg


@pytest.mark.parametrize(
    "override, line",
    [
        ("data.batch_size=many", "error: config data.batch_size: expected int, got str 'many'"),
        ("data.crop_seconds=-1", "error: config data.crop_seconds: must be >= 0.1 s, got -1"),
        (
            "data.crop_seconds=10",
            "error: config data.crop_seconds: 10 s is longer than an example "
            "(data.example_seconds=4.0); use at most 4.0, or null for whole examples",
        ),
        ("seed=abc", "error: config seed: expected int, got str 'abc'"),
        (
            "+trainer.max_step=5",
            "error: config trainer.max_step: unknown key (did you mean trainer.max_steps?); "
            "it would be ignored",
        ),
        (
            "trainer.precision=foo",
            "error: config trainer.precision: must be one of ['auto', '32', '32-true', '64', "
            "'64-true', 'bf16-mixed', 'bf16-true', '16-mixed'], got 'foo'",
        ),
    ],
)
def test_cli_reports_bad_config_in_one_line(tmp_path: Path, override: str, line: str):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            override,
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert lines == [line]
    # nothing of a run written (Hydra's own .hydra/ record of the command aside)
    assert not list(tmp_path.glob("runs/*/config.yaml")) and not list(tmp_path.rglob("*.ckpt"))


def test_ddp_trainer_and_slurm_launcher_compose():
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["trainer=ddp", "trainer.devices=4", "hydra/launcher=slurm"],
            return_hydra_config=True,
        )
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"
    assert cfg.trainer.max_steps == 3000  # inherited from trainer/default
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4 and launcher.nodes == 1
    # The launcher class is importable, so `-m hydra/launcher=slurm` would start.
    from hydra.utils import get_class

    assert get_class(launcher._target_).__name__ == "SlurmLauncher"


@pytest.mark.parametrize(
    "override, message",
    [
        ("latent.beta=-1", "config latent.beta: must be >= 0, got -1"),
        ("latent.mode=clip", "config latent.mode: must be 'pooled' or 'frame', got 'clip'"),
        (
            "data.source.balance=most",
            "config data.source.balance: must be 'equal' or 'cap', got 'most'",
        ),
        ("data.features.f0_hop_length=0", "config data.features.f0_hop_length: must be > 0, got 0"),
    ],
)
def test_latent_and_import_values_are_checked(override: str, message: str):
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[override])
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    assert str(e.value) == message


def compose_task(name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def test_every_tool_reads_one_morph_path_and_the_yaml_defaults_are_the_ones_built():
    """The keys that disagreed before: the morph path (slerp for training's table, linear for
    the morph CLI, interpolate, the performer and nn~), latent.prior (the builder fell back to
    standard) and model.z_mode (to concat)."""
    from ddsp_morph.config import group_defaults
    from ddsp_morph.evaluation.morph_table import MorphSettings
    from ddsp_morph.realtime.cli import main as realtime_main  # noqa: F401 (its flags' defaults)
    from ddsp_morph.realtime.performer import PerformerSettings

    cfg = compose_cfg()
    path = cfg.morph.path
    assert path == group_defaults("morph").path == "slerp"
    assert compose_task("morph", "run=r").path == path
    assert compose_task("interpolate", "run=r", "from=a", "to=b", "source=s").path == path
    assert MorphSettings().path == PerformerSettings().path == path
    assert MorphSettings.from_config(cfg.morph, cfg.seed) == MorphSettings(seed=0)
    assert PerformerSettings().even == MorphSettings().even == cfg.morph.even is True
    assert cfg.latent.prior == "label" and cfg.model.z_mode == "film"
    model = build_model(cfg, n_instruments=4)
    assert model.encoder.prior == "label" and model.decoder.film is not None


def test_an_old_run_config_loads_with_the_behaviour_it_was_trained_with(tmp_path: Path):
    """A config.yaml written before latent.prior and model.z_mode existed meant standard and
    concat; one written before the renames has its values under the old names."""
    from omegaconf import OmegaConf

    from ddsp_morph.runs import saved_config

    cfg = OmegaConf.to_container(compose_cfg(), resolve=False)
    del cfg["latent"]["prior"], cfg["model"]["z_mode"], cfg["latent"]["encoder_gru_size"]
    cfg["latent"]["gru_size"] = 48
    del cfg["data"]["sampler_balance"]
    cfg["data"]["balance"] = "register"
    old = saved_config(OmegaConf.create(cfg))
    assert old.latent.prior == "standard" and old.model.z_mode == "concat"
    assert old.latent.encoder_gru_size == 48 and old.data.sampler_balance == "register"
    model = build_model(old, n_instruments=4)
    assert model.encoder.prior == "standard" and model.decoder.film is None


def test_a_renamed_key_still_works_for_one_release_with_a_note(caplog):
    cfg = compose_cfg("latent.gru_size=48", "data.balance=register")
    with caplog.at_level("WARNING", logger="ddsp_morph.config"):
        validate_config(cfg)
    assert cfg.latent.encoder_gru_size == 48 and cfg.latent.gru_size is None
    assert cfg.data.sampler_balance == "register"
    assert "config latent.gru_size is now latent.encoder_gru_size" in caplog.text
    assert build_model(cfg, n_instruments=4).encoder.gru.hidden_size == 48


def test_entry_points_share_one_wrapper_and_find_the_config_installed():
    """Every entry point is wrapped by errors.exits_on_error, and the config tree is the one
    inside the package (found without a checkout)."""
    import ddsp_morph
    from ddsp_morph import cli, config, errors

    assert config.CONF_DIR == Path(ddsp_morph.__file__).parent / "conf"
    assert (config.CONF_DIR / "config.yaml").is_file()
    pkg = Path(ddsp_morph.__file__).parent
    for module, _ in cli.TASKS.values():
        text = (pkg.joinpath(*module.split(".")[1:]).with_suffix(".py")).read_text()
        assert "@exits_on_error" in text, module
        assert 'print(f"error: {e}"' not in text, f"{module} writes its own error wrapper"
    assert errors.exits_on_error.__doc__


@pytest.mark.parametrize("task", ["morph", "interpolate", "eval", "export"])
def test_a_task_without_its_run_is_one_line_and_exit_2(task: str, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "ddsp_morph.cli", task],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "error: run=... is required (give it on the command line)"
    ]
