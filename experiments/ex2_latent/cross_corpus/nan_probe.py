"""Which training batches have a non-finite loss or gradient, and which op makes it: the default
module's objective on the corpus's training batches, with Adam and gradient clipping as the
trainer has them, float32, no Lightning. The first two bad batches are run again under autograd's
anomaly mode, which names the backward op that returned NaN and where its forward was called.

    python experiments/ex2_latent/cross_corpus/nan_probe.py [--batches N] [override ...]
    python experiments/ex2_latent/cross_corpus/nan_probe.py data.corpus.name=timgm num_threads=1
"""

import sys

import torch
from hydra import compose, initialize_config_dir

from ddsp_morph.build import build_datamodule, build_model
from ddsp_morph.config import CONF_DIR
from ddsp_morph.training.setup import build_module


def main(argv: list[str]) -> None:
    n_batches = 200
    if argv[:1] == ["--batches"]:
        n_batches, argv = int(argv[1]), argv[2:]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["logger=none", *argv])
    torch.set_num_threads(int(cfg.num_threads or torch.get_num_threads()))
    torch.manual_seed(int(cfg.seed))
    dm = build_datamodule(cfg)
    dm.setup("fit")
    module = build_module(cfg, build_model(cfg, n_instruments=len(dm.instruments)))
    opt = torch.optim.Adam(module.parameters(), lr=float(cfg.model.lr))
    bad, seen = 0, 0
    while seen < n_batches:
        for batch in dm.train_dataloader():
            state = torch.get_rng_state()  # the objective's random window, for the rerun
            opt.zero_grad()
            loss = module.objective(module.model(batch), batch, "train")
            if torch.isfinite(loss):
                loss.backward()
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            finite = torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
            if not finite:
                bad += 1
                print(
                    f"batch {seen}: non-finite {'loss' if not torch.isfinite(loss) else 'gradient'}"
                )
                if bad <= 2:
                    torch.set_rng_state(state)
                    opt.zero_grad()
                    try:
                        with torch.autograd.detect_anomaly():
                            module.objective(module.model(batch), batch, "train").backward()
                        print("  not reproduced under anomaly mode")
                    except RuntimeError as e:
                        print(f"  {str(e).splitlines()[0]}")
            else:
                torch.nn.utils.clip_grad_norm_(
                    module.parameters(), float(cfg.trainer.gradient_clip_val)
                )
                opt.step()
            seen += 1
            if seen % 50 == 0:
                print(f"batch {seen}: {bad} non-finite so far", flush=True)
            if seen >= n_batches:
                break
    print(f"{bad} of {seen} batches non-finite")


if __name__ == "__main__":
    main(sys.argv[1:])
