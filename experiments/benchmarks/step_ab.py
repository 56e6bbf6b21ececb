"""The default training step against an earlier revision's, in one process.

    python experiments/benchmarks/step_ab.py <rev> [threads] [key=value ...]

Builds the default model and data once (``conf/``, the corpus under ``data/``), and a second
Lightning module that runs ``training/module.py`` and the decoder's ``forward`` as they were at
``<rev>`` (read with ``git show``) on a copy of the same weights. Both run their full step
(forward, objective, backward, Adam) on the same 14 corpus batches, interleaved, the first 2
not counted. Prints the loss of each on one batch (same math: equal) and the median step
times and their ratio."""

from __future__ import annotations

import copy
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from ddsp_morph.build import build_datamodule, build_model
from ddsp_morph.training.setup import build_module

ROOT = Path(__file__).resolve().parents[2]
MODULE_ARGS = (
    "path_weight cycle_weight window_frames fluctuation_weight conversion_fluctuation_weight "
    "beta beta_warmup_steps free_bits"
).split()


def load_at(rev: str, path: str, name: str, tmp: Path) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    file = tmp / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    rev = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"paths.data_dir={ROOT / 'data'}", *sys.argv[3:]])
    torch.manual_seed(0)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, n_instruments=len(dm.instruments))
    model.set_stats(dm.stats)
    new = build_module(cfg, model, instruments=dm.instruments)
    with tempfile.TemporaryDirectory() as tmp:
        old_module = load_at(rev, "src/ddsp_morph/training/module.py", "old_module", Path(tmp))
        old_decoder = load_at(rev, "src/ddsp_morph/models/decoder.py", "old_decoder", Path(tmp))
    old_model = copy.deepcopy(model)
    old_model.decoder.forward = types.MethodType(old_decoder.Decoder.forward, old_model.decoder)
    old = old_module.DDSPModule(
        old_model,
        optimizer=None,
        instruments=dm.instruments,
        **{k: getattr(new, k) for k in MODULE_ARGS if hasattr(new, k)},
    )
    old.loss_kwargs = new.loss_kwargs
    for m in (new, old):
        m.log = lambda *a, **k: None
    optimizers = {
        "new": torch.optim.Adam(new.parameters()),
        "old": torch.optim.Adam(old.parameters()),
    }
    it = iter(dm.train_dataloader())
    batches = [next(it) for _ in range(14)]
    with torch.no_grad():
        for name, m in (("new", new), ("old", old)):
            torch.manual_seed(1)
            loss = m.objective(m(batches[0]), batches[0], "train")
            print(
                f"{name} ({'working tree' if name == 'new' else rev}) loss on batch 0: {float(loss):.6f}"
            )
    times: dict[str, list[float]] = {"new": [], "old": []}
    for i, batch in enumerate(batches):
        for name, m in (("new", new), ("old", old)):
            t = time.perf_counter()
            loss = m.objective(m(batch), batch, "train")
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if i >= 2:
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{threads} threads: step {med['old']:.3f} s at {rev}, {med['new']:.3f} s now: "
        f"{med['old'] / med['new']:.2f}x"
    )


if __name__ == "__main__":
    main()
