"""The bench scripts import the product by name; a product refactor that moves a name must move them too. bench/ runs
outside `make test` (minutes to hours), so a moved name would otherwise surface only at the end of a long run
(bench/seq2seq_quality.py once failed in its scoring step, after training, on a function moved to text_scores)."""

import ast
import importlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def product_imports() -> list:
    """(script, line, module, name) of every `from transferlab... import name` in bench/*.py."""
    found = []
    for script in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transferlab"):
                found += [(script.name, node.lineno, node.module, alias.name) for alias in node.names]
    return found


def resolves(module: str, name: str) -> bool:
    try:
        owner = importlib.import_module(module)
    except ImportError:
        return False
    if hasattr(owner, name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")  # a submodule imported by name
    except ImportError:
        return False
    return True


def test_every_product_name_a_bench_script_imports_exists():
    imports = product_imports()
    assert len(imports) > 20  # the scan reads the scripts (a broken glob would pass vacuously)
    missing = [f"{script}:{line}: from {module} import {name}" for script, line, module, name in imports
               if not resolves(module, name)]  # fmt: skip
    assert missing == []
