"""The package's shape holds: layers import downwards only, no import cycles, no re-export shims,
no function over 80 lines, a handful of modules at the top and the rest in subpackages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmtok"
MAX_FUNCTION_LINES = 80
MAX_TOP_MODULES = 12
MIN_SUBPACKAGES = 5

# low -> high; units on one layer may not import each other (no sideways imports)
LAYERS: list[tuple[str, ...]] = [
    ("mmtok._version",),
    ("mmtok.core",),
    ("mmtok.vq", "mmtok.synth"),
    ("mmtok.image", "mmtok.audio"),
    ("mmtok.video",),
    ("mmtok.stream",),
    ("mmtok.pretrained",),
    ("mmtok.data",),
    ("mmtok.lm",),
    ("mmtok.info_export",),  # what info says of an export, and of files a killed writer left
    ("mmtok.info_tokenizer_run",),  # what info says of a tokenizer trainer's run folder
    ("mmtok.context", "mmtok.info", "mmtok.codefile", "mmtok.evaluate"),
    ("mmtok",),  # the package face: what the demo and the command may use
    ("mmtok.demo",),
    ("mmtok.cli",),
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def unit_of(name: str) -> str:
    """The layering unit a module belongs to: ``mmtok.image.io`` -> ``mmtok.image``."""
    parts = name.split(".")
    if len(parts) == 1:
        return "mmtok"
    return ".".join(parts[:2])


def imported(path: Path) -> set[str]:
    """Every mmtok module ``path`` imports, at the top, inside functions or under TYPE_CHECKING."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "mmtok"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "mmtok":
                continue
            for a in node.names:  # `from mmtok.image import io` names a module
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in out if m in MODULES and m != me}


GRAPH = {name: imported(path) for name, path in MODULES.items()}


def test_the_layers_cover_every_module() -> None:
    assert {unit_of(m) for m in MODULES} <= set(LAYER), sorted({unit_of(m) for m in MODULES} - set(LAYER))


def test_imports_run_downwards_only() -> None:
    wrong = []
    for name, targets in GRAPH.items():
        if name == "mmtok":  # the face states the public names of every layer
            continue
        mine = LAYER[unit_of(name)]
        for t in targets:
            theirs = LAYER[unit_of(t)]
            if unit_of(t) != unit_of(name) and theirs >= mine:
                wrong.append(f"{name} -> {t}")
    assert not wrong, "imports that run up or sideways: " + ", ".join(sorted(wrong))


def test_nothing_imports_the_command_line() -> None:
    assert not [m for m, t in GRAPH.items() if "mmtok.cli" in t]


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def _defined(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                elts = t.elts if isinstance(t, ast.Tuple) else [t]
                names |= {e.id for e in elts if isinstance(e, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            return [e.value for e in node.value.elts]  # type: ignore[attr-defined]
    return []


@pytest.mark.parametrize("name", sorted(n for n, p in MODULES.items() if p.name != "__init__.py"))
def test_no_module_re_exports_another(name: str) -> None:
    """A module's ``__all__`` lists only what it defines; only package faces hand names on."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    borrowed = sorted(set(_all(tree)) - _defined(tree))
    assert not borrowed, f"{name} lists names it only imports: {borrowed}; import them from their home instead"
    assert _defined(tree), f"{name} defines nothing"


def test_no_function_over_80_lines() -> None:
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} ({n} lines)")
    assert not long, "functions over 80 lines: " + ", ".join(long)


def test_few_modules_at_the_top_and_the_rest_in_subpackages() -> None:
    top = [p for p in PACKAGE.glob("*.py")]
    subpackages = [p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert len(top) <= MAX_TOP_MODULES, sorted(p.name for p in top)
    assert len(subpackages) >= MIN_SUBPACKAGES
    for sub in subpackages:  # every subpackage says its job and what it may import
        doc = ast.get_docstring(ast.parse((sub / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "Imports:" in doc or "imports" in doc.lower(), f"{sub.name}/__init__.py does not say what it may import"


def test_one_k_means_one_schedule_one_psnr() -> None:
    """One implementation per idea: a second Lloyd loop, LR schedule or PSNR is a defect."""
    seen: dict[str, list[str]] = {"lloyd": [], "warmup_cosine": [], "psnr": []}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for key in seen:
                    if node.name.lstrip("_") == key or (key == "psnr" and node.name.lstrip("_").endswith("_psnr")):
                        seen[key].append(name)
    assert seen["lloyd"] == ["mmtok.vq.kmeans"], seen["lloyd"]
    assert seen["warmup_cosine"] == ["mmtok.core.schedule"], seen["warmup_cosine"]
    assert seen["psnr"] == ["mmtok.core.metrics"], seen["psnr"]
