"""The packages point one way: each imports only the layers below it, also inside functions.

Bottom to top: dsp (pure), then the libraries (synths, models, data, control), then the shared
pieces (latent, plots, build, runs, sources), then evaluation, training and realtime, and the
entry points on top. A new module of the package must be given a row here."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ddsp_morph"
THIRD_PARTY_OF_DSP = {
    "torch",
    "numpy",
    "math",
    "__future__",
    "typing",
    "collections",
    "dataclasses",
}

BASE = {"errors", "dsp"}
LIBS = BASE | {"synths", "models", "data", "control", "config"}
SHARED = LIBS | {"latent", "plots", "build", "runs", "sources"}
ENTRY = {
    "cli",
    "train",
    "prepare",
    "evaluate",
    "morph",
    "interpolate",
    "export",
    "play",
    "__main__",
}

# module (first part under ddsp_morph) -> the modules it may import (first part)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "dsp": {"dsp"},
    "synths": {"dsp", "synths", "errors"},
    "models": {"dsp", "synths", "models", "errors"},
    "data": {"dsp", "data", "errors"},
    "control": {"dsp", "control", "errors"},
    "config": {"errors", "models"},
    "latent": {"dsp", "models", "latent", "errors"},
    "plots": {"latent", "data", "dsp"},
    "build": LIBS,
    "runs": LIBS | {"build", "latent"},
    "sources": LIBS | {"build"},
    "evaluation": SHARED | {"evaluation"},
    "training": SHARED | {"evaluation", "training"},
    "realtime": SHARED | {"realtime"},
}
ALLOWED.update({e: SHARED | {"evaluation", "training", "realtime"} | ENTRY for e in ENTRY})


def ddsp_imports(path: Path) -> set[str]:
    """The ddsp_morph modules ``path`` imports anywhere in it, as their first part below the
    package (``ddsp_morph.training.build`` -> ``training``); relative imports resolved."""
    tree = ast.parse(path.read_text())
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[: len(parts) - node.level])
                names = [".".join(["ddsp_morph", *base] + ([node.module] if node.module else []))]
            elif node.module:
                names = [node.module]
                if node.module == "ddsp_morph":
                    names = [f"ddsp_morph.{a.name}" for a in node.names]
        for n in names:
            if n.startswith("ddsp_morph."):
                out.add(n.split(".")[1])
    return out


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def test_every_module_has_a_row():
    layers = {layer_of(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert layers - set(ALLOWED) == set(), "give these modules a row in ALLOWED"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_point_down(path):
    layer = layer_of(path)
    if layer == "__init__":
        return
    upward = ddsp_imports(path) - ALLOWED[layer] - {layer}
    assert not upward, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(upward)}"


def test_dsp_imports_nothing_heavy():
    files = sorted((PACKAGE / "dsp").glob("*.py"))
    assert len(files) >= 6
    for f in files:
        tree = ast.parse(f.read_text())
        tops = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if not node.module.startswith("ddsp_morph.dsp"):
                    tops.add(node.module.split(".")[0])
        assert tops <= THIRD_PARTY_OF_DSP, f"{f.name} imports {tops - THIRD_PARTY_OF_DSP}"


def test_the_check_sees_an_import_inside_a_function(tmp_path, monkeypatch):
    fake = PACKAGE / "evaluation" / "_probe.py"
    text = "def f():\n    from ddsp_morph.training.fit import train\n    return train\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text)
    assert "training" in ddsp_imports(fake)
    assert "training" not in ALLOWED["evaluation"]
