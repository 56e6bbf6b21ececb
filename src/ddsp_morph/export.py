"""``python -m ddsp_morph.export run=<run dir> [frames_per_block=1] [out=<file>.ts]``

Writes a TorchScript streaming synth (see ddsp_morph.realtime.export) and a JSON beside it
with what a host needs: sample rate, block size, z size, the instruments' centroids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ddsp_morph.errors import DDSPMorphError, positive_int, require_f0_loudness


def main(argv: list[str] | None = None) -> int:
    args = OmegaConf.from_cli(sys.argv[1:] if argv is None else argv)
    try:
        if "run" not in args:
            raise DDSPMorphError("run=<run dir> is required")
        from ddsp_morph.realtime.export import export_run
        from ddsp_morph.training.checkpoint import load_run

        frames = positive_int(args.get("frames_per_block", 1), "frames_per_block", high=64)
        run = load_run(str(args.run), checkpoint=str(args.get("checkpoint", "last")))
        require_f0_loudness(run.model, run.run_dir)
        out = Path(
            str(args.get("out", Path(str(args.run)) / "export" / f"ddsp_morph_stream_{frames}f.ts"))
        )
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
    except DDSPMorphError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
