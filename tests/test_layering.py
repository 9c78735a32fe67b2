"""The core of wino_gen (every module beside ``wino_gen/flow``: config, winograd, golden, format,
limits, schedule, perf, network, ...) imports nothing of the hardware, the simulator or training:
importing it loads none of them, and no import statement in it names them, not even one inside a
function that runs only later. Only ``wino_gen.flow`` and the CLI (``wino_gen.__main__``) may."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wino_gen"
#: top-level packages the core must not import, and the subpackage that imports rtl
FORBIDDEN = ("amaranth", "amaranth_boards", "rtl", "sim", "train", "torch")
FLOWS = "wino_gen.flow"
CORE = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__")


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN or name == FLOWS or name.startswith(FLOWS + ".")


def _imports(module: str) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import statement in a core module, wherever it
    stands; ``from . import x`` counts as importing ``wino_gen.x``."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                out.append((node.lineno, node.module))
            else:
                base = ".".join(["wino_gen", *(node.module.split(".") if node.module else [])])
                out += [(node.lineno, base)] + [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def test_core_modules_found():
    assert {"config", "winograd", "golden", "format", "limits", "schedule", "perf", "network"} <= set(CORE)


@pytest.mark.parametrize("module", CORE)
def test_core_module_names_no_hardware_simulator_or_training(module):
    bad = [f"{module}.py:{line}: {name}" for line, name in _imports(module) if _forbidden(name)]
    assert not bad, "core module imports " + ", ".join(bad)


def test_importing_the_core_loads_no_hardware_simulator_or_training():
    names = ["wino_gen" if m == "__init__" else f"wino_gen.{m}" for m in CORE]
    code = (f"import importlib, sys\nfor m in {names!r}:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{FORBIDDEN!r} or m == {FLOWS!r} or m.startswith({FLOWS + '.'!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]"
