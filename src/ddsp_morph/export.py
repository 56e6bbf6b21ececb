"""``python -m ddsp_morph.export run=<run dir> [format=block|nn_tilde|neutone] [out=<file>]``

format=block (default, ``frames_per_block=1``): a TorchScript streaming synth (see
ddsp_morph.realtime.tracing) and a JSON beside it with what a host needs: sample rate, block
size, z size, the instruments' centroids.
format=nn_tilde (``rate=48000 from=<instrument> to=<instrument>``): a .ts that nn~ opens as it
is (ddsp_morph.realtime.nn_tilde): f0, loudness and morph in, audio out.
format=neutone: a .nm for the Neutone plugin (ddsp_morph.realtime.neutone)."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ddsp_morph.config import CONF_DIR
from ddsp_morph.errors import DDSPMorphError, exits_on_error, positive_int, require_f0_loudness


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
@exits_on_error
def main(args: DictConfig) -> int:
    from ddsp_morph.realtime.tracing import export_run
    from ddsp_morph.runs import load_run

    fmt = str(args.format)
    if fmt not in ("block", "nn_tilde", "neutone"):
        raise DDSPMorphError(f"format: expected block, nn_tilde or neutone, got {fmt!r}")
    frames = positive_int(args.frames_per_block, "frames_per_block", high=64)
    run = load_run(str(args.run), checkpoint=str(args.checkpoint))
    require_f0_loudness(run.model, run.run_dir)
    if fmt == "nn_tilde":
        from ddsp_morph.realtime.nn_tilde import export_nn_tilde

        rate = positive_int(args.rate, "rate", low=8000, high=384000)
        out = Path(str(args.out or Path(str(args.run)) / "export" / "ddsp_morph_nn.ts"))
        export_nn_tilde(
            run,
            out,
            host_rate=rate,
            source=args["from"],
            target=args.to,
            voices=positive_int(args.voices, "voices", high=64),
        )
        print(f"wrote {out} and {out.with_suffix('.json')}")
        return 0
    if fmt == "neutone":
        from ddsp_morph.realtime.neutone import export_neutone

        out = Path(str(args.out or Path(str(args.run)) / "export" / "ddsp_morph.nm"))
        export_neutone(run, out, source=args["from"], target=args.to)
        print(f"wrote {out}")
        return 0
    out = Path(str(args.out or Path(str(args.run)) / "export" / f"ddsp_morph_stream_{frames}f.ts"))
    export_run(run, out, frames_per_block=frames)
    latent = run.extra.get("latent") or {}
    meta = {
        "sample_rate": int(run.cfg.data.sample_rate),
        "hop_length": int(run.cfg.data.hop_length),
        "frames_per_block": frames,
        "block_size": frames * int(run.cfg.data.hop_length),
        "z_dim": run.model.encoder.z_dim if run.model.encoder is not None else 0,
        "centroids": latent.get("centroids", {}),
        "inputs": "forward(f0_hz [frames], loudness_db [frames], z [max(1, z_dim)]) -> audio [block_size]",
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    main()
