"""Neutone export: a ``.nm`` the Neutone FX plugin loads — your instrument in, the trained
instrument out, with knobs for the morph and the two XY axes, and its delay reported.

Built with ``neutone-sdk`` (``WaveformToWaveformBase`` and ``save_neutone_model``, which
scripts the model, validates its metadata, renders the SDK's bundled samples and runs its
speed benchmark). The SDK declares ``numpy<2.3`` while this project pins numpy 2.4.6; it is
installed without its dependencies (the Makefile does) and works with numpy 2.4 and torch
2.11 as far as the export, its checks and the tests here go.

Inside: ``realtime.nn_tilde.NNTildeSynth.audio_xy`` (48 kHz; the SDK resamples other DAW
rates): the input's f0, level and voicing are tracked (``realtime.tracker``), the timbre is
the morph path plus the XY offsets along the latent's principal axes.
"""

from pathlib import Path
from typing import Dict, List  # noqa: UP035 - TorchScript reads these annotations

import torch
from torch import Tensor

from ddsp_morph.errors import DDSPMorphError

try:  # the SDK is optional at import time: only this export needs it
    from neutone_sdk import ContinuousNeutoneParameter, WaveformToWaveformBase
except ImportError as e:  # pragma: no cover - exercised where the SDK is missing
    _IMPORT_ERROR: Exception | None = e
    WaveformToWaveformBase = torch.nn.Module  # type: ignore[misc,assignment]
    ContinuousNeutoneParameter = None  # type: ignore[misc,assignment]
else:
    _IMPORT_ERROR = None


class DDSPMorphNeutone(WaveformToWaveformBase):  # type: ignore[misc,valid-type]
    def get_model_name(self) -> str:
        return "DDSP.Morph"

    def get_model_authors(self) -> List[str]:  # noqa: UP006
        return ["DDSP Morph"]

    def get_model_short_description(self) -> str:
        return "Timbre transfer with a morph between trained instruments."

    def get_model_long_description(self) -> str:
        return (
            "Play a monophonic instrument or sing: its pitch and level drive a DDSP "
            "harmonic-plus-noise synth trained on several instruments. The morph knob travels "
            "between two of them; X and Y move the timbre along the latent's main axes."
        )

    def get_technical_description(self) -> str:
        return (
            "Streaming YIN pitch and A-weighted loudness (auto-gain onto the training level) "
            "drive a GRU decoder with a FiLM-modulated timbre latent; harmonic and filtered "
            "noise synthesis with a learned reverb, 16 kHz inside, 48 kHz out."
        )

    def get_technical_links(self) -> Dict[str, str]:  # noqa: UP006
        return {}  # the SDK checks links over the network; none here (no network needed)

    def get_tags(self) -> List[str]:  # noqa: UP006
        return ["timbre transfer", "ddsp", "morph"]

    def get_model_version(self) -> str:
        return "0.1.0"

    def is_experimental(self) -> bool:
        return True

    def get_neutone_parameters(self) -> List[ContinuousNeutoneParameter]:  # noqa: UP006
        return [
            ContinuousNeutoneParameter("morph", "from the first instrument to the second", 0.0),
            ContinuousNeutoneParameter("x", "timbre along the latent's first axis", 0.5),
            ContinuousNeutoneParameter("y", "timbre along the latent's second axis", 0.5),
        ]

    @torch.jit.export
    def is_input_mono(self) -> bool:
        return True

    @torch.jit.export
    def is_output_mono(self) -> bool:
        return True

    @torch.jit.export
    def get_native_sample_rates(self) -> List[int]:  # noqa: UP006
        return [48000]

    @torch.jit.export
    def get_native_buffer_sizes(self) -> List[int]:  # noqa: UP006
        return []  # any: the module gathers frames itself

    @torch.jit.export
    def calc_model_delay_samples(self) -> int:
        return int(self.model.audio_latency)

    @torch.jit.export
    def reset_model(self) -> bool:
        self.model.reset()
        return True

    def do_forward_pass(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:  # noqa: UP006
        n = x.shape[-1]
        morph = params["morph"].expand(n)
        px = (params["x"] * 2.0 - 1.0).expand(n)
        py = (params["y"] * 2.0 - 1.0).expand(n)
        return self.model.audio_xy(x[0], morph, px, py).reshape(1, n)


def export_neutone(
    run,
    out: Path,
    *,
    source: str | None = None,
    target: str | None = None,
    benchmark: bool = True,
) -> Path:
    """Write ``out`` (.nm) and the SDK's metadata.json and samples beside it."""
    import shutil
    import tempfile

    from ddsp_morph.realtime.nn_tilde import build_nn_module

    if _IMPORT_ERROR is not None:
        raise DDSPMorphError(
            f"format=neutone needs neutone-sdk ({_IMPORT_ERROR}); install it with "
            "pip install --no-deps neutone-sdk==1.5.2 (make venv does)"
        )
    from neutone_sdk.utils import save_neutone_model

    module, info = build_nn_module(run, host_rate=48000, source=source, target=target)
    module.audio_latency = int(info["latency_samples_audio"])
    wrapper = DDSPMorphNeutone(module, use_debug_mode=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_neutone_model(
            wrapper, Path(tmp), dump_samples=True, submission=True, speed_benchmark=benchmark
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "model.nm", out)
        shutil.copyfile(Path(tmp) / "metadata.json", out.with_suffix(".json"))
    return out
