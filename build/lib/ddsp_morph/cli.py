"""``ddsp-morph <task> [arguments]``: one command for every tool.

Each task is also ``python -m ddsp_morph.<module>``; the Hydra tasks take ``key=value`` overrides
of their config in ``conf/``, found inside the installed package."""

from __future__ import annotations

import importlib
import sys

# task -> (module with a main(), what it does)
TASKS: dict[str, tuple[str, str]] = {
    "prepare": ("ddsp_morph.prepare", "render the default corpus or import SOURCE, cache features"),
    "train": ("ddsp_morph.train", "train a model (conf/config.yaml)"),
    "eval": ("ddsp_morph.evaluate", "resynthesis metrics of a run on a split"),
    "morph": ("ddsp_morph.morph", "the morph table of a run"),
    "interpolate": (
        "ddsp_morph.interpolate",
        "one performance rendered along a path, with a strip",
    ),
    "export": ("ddsp_morph.export", "TorchScript for a host: block, nn_tilde or neutone"),
    "realtime": ("ddsp_morph.realtime.cli", "play a run live from MIDI/OSC, or render a file"),
    "play": ("ddsp_morph.play", "play a run from a web page: keyboard, timbre map, spectrogram"),
}


def usage() -> str:
    width = max(map(len, TASKS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in TASKS.items())
    return f"usage: ddsp-morph <task> [arguments]\n\ntasks:\n{rows}\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        print(f"error: unknown task {task!r}; one of {', '.join(TASKS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(TASKS[task][0])
    sys.argv = [f"ddsp-morph {task}", *rest]
    result = module.main(rest) if task in ("realtime", "play") else module.main()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
