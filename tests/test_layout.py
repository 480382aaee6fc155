"""The house: folders along the data flow, and no import running back up it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import specscout

PACKAGE = Path(specscout.__file__).parent
#: The folders in the order data flows through them; a module may import from its own folder
#: and from the folders before it, never from one after it.
FLOW = ("errors", "progress", "spectra", "archive", "simulate", "labels", "learn", "catalogue",
        "web", "demo", "cli")


def _layer(module: str) -> int | None:
    if module == ".":
        return len(FLOW)  # relative imports hide the layer: write them out
    parts = module.split(".")
    if parts[0] != "specscout":
        return None
    if len(parts) == 1:
        return -1  # the package itself: its public names load lazily
    return FLOW.index(parts[1])


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, those inside functions included; a
    relative import is reported as the module ".", which no layer allows."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            for a in node.names:  # a name may be a module, or a public name loaded lazily
                if node.module == "specscout" and a.name in specscout._PUBLIC:
                    found.append((node.lineno, specscout._PUBLIC[a.name]))
                base = PACKAGE.parent / node.module.replace(".", "/") / a.name
                if base.is_dir() or base.with_suffix(".py").is_file():
                    found.append((node.lineno, f"{node.module}.{a.name}"))
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "specscout" and node.attr in specscout._PUBLIC):
            found.append((node.lineno, specscout._PUBLIC[node.attr]))  # specscout.NAME
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.startswith("specscout.")
              and ast.unparse(node.func) in ("importlib.import_module", "import_module",
                                             "__import__")):
            found.append((node.lineno, node.args[0].value))  # imported by name at run time
    return found


def test_every_module_is_in_a_folder_of_the_flow():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts == ("__init__.py",):
            continue
        assert rel.parts[0].removesuffix(".py") in FLOW, f"{rel} is outside {FLOW}"


def test_no_import_runs_upstream():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts == ("__init__.py",):
            continue
        own = FLOW.index(rel.parts[0].removesuffix(".py"))
        for line, module in _imports(path):
            layer = _layer(module)
            if layer is not None and layer > own:
                upward.append(f"{rel}:{line} imports {module}")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_the_checker_sees_every_kind_of_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from specscout.learn.model import build\n"
                   "from specscout import Project, demo\nfrom . import store\n"
                   "import specscout.catalogue.audit\n"
                   "import specscout\nstore = specscout.label_store\n"
                   "import importlib\nimportlib.import_module('specscout.web.app')\n")
    layers = sorted(_layer(m) for _, m in _imports(bad) if _layer(m) not in (None, -1))
    assert layers == sorted([FLOW.index(x) for x in ("learn", "archive", "demo", "catalogue",
                                                     "labels", "web")] + [len(FLOW)])


def test_public_api_from_one_place():
    for name in specscout.__all__:
        assert getattr(specscout, name) is not None, name
    from specscout import Grid, Project, read  # noqa: F401


def test_help_imports_no_heavy_library():
    code = ("import sys; from specscout.cli import main; main(['--help']); "
            "print(sorted(m for m in ('torch', 'astropy', 'dask', 'zarr', 'pyarrow', "
            "'sqlalchemy', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
