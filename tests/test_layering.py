"""dsp/ stays pure: it imports only torch, numpy, math and the standard library."""

import ast
from pathlib import Path

DSP = Path(__file__).resolve().parents[1] / "src" / "ddsp_morph" / "dsp"
ALLOWED = {
    "torch",
    "numpy",
    "math",
    "__future__",
    "typing",
    "collections",
    "dataclasses",
    "ddsp_morph",
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            if node.module.startswith("ddsp_morph") and not node.module.startswith(
                "ddsp_morph.dsp"
            ):
                names.add(node.module)
    return names


def test_dsp_imports_nothing_heavy():
    files = sorted(DSP.glob("*.py"))
    assert len(files) >= 6
    for f in files:
        bad = {
            n
            for n in imports(f)
            if n.split(".")[0] not in ALLOWED or (n.startswith("ddsp_morph") and n != "ddsp_morph")
        }
        assert not bad, f"{f.name} imports {bad}"
