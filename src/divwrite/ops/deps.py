"""Stage dependencies from imports: what each DVC stage's code runs, and whether `dvc.yaml` says so.

`dvc repro` re-runs a stage when one of its `deps` changes, so every project file a stage's
code imports, directly or through other modules, must be one of them (or lie in a folder
that is). `required_files` walks the imports of a stage's entry points (the scripts and
`-m` modules of its `cmd`) with `ast`, transitively, over `stages/` and `src/divwrite/`:
every `import` and `from ... import` counts, also inside functions (an import that only
some code paths reach still changes what the stage can do), except under `if TYPE_CHECKING:`,
which never runs. Importing `divwrite.a.b` also runs `divwrite/__init__.py` and
`divwrite/a/__init__.py`; a package `__init__.py` that holds nothing but its docstring runs
no code, so it is not required (a folder dep may still contain it).

`check` compares that with the stages DVC itself resolves from `dvc.yaml` (`foreach` items
included) and reports, per stage, a required file that no dep covers (the stage would not
re-run when it changes) and a dep under `stages/` or `src/` that covers no required file (the
stage would re-run for nothing). `divwrite deps` prints the required files per stage;
`divwrite deps --check` exits 1 naming every problem (tests/test_stage_deps.py runs it).
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = "divwrite"
SOURCE_ROOT = Path("src")  # the package lives in src/divwrite
CODE_ROOTS = ("stages", "src")  # deps under these are code; others (data, models, configs) are not checked


@dataclass(frozen=True)
class Problem:
    """One mismatch between a stage's imports and its deps in `dvc.yaml`."""

    stage: str
    path: str
    kind: str  # "missing" | "unused"

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.stage}: {self.path} is imported by the stage's code but no dep covers it"
        return f"{self.stage}: dep {self.path} covers no file the stage's code imports"


def module_path(root: Path, module: str) -> Path | None:
    """The file of a `divwrite` module (`a/b.py` or `a/b/__init__.py`) relative to `root`, or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = SOURCE_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def _package_inits(root: Path, module: str) -> list[Path]:
    """`__init__.py` of every package above `module` (importing a module runs them first)."""
    parts = module.split(".")
    found = (module_path(root, ".".join(parts[:i])) for i in range(1, len(parts)))
    return [p for p in found if p is not None]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _current_package(path: Path) -> str:
    """The dotted package a source file belongs to (for relative imports)."""
    rel = path.relative_to(SOURCE_ROOT) if path.is_relative_to(SOURCE_ROOT) else path
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts[:-1])


@cache
def _imported_modules(root: Path, path: Path) -> tuple[str, ...]:
    """The `divwrite` modules one file imports (submodules named in `from pkg import name` included)."""
    tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=str(path))
    modules: list[str] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            package = _current_package(path).split(".")
            base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
        modules.append(base)
        modules += [f"{base}.{alias.name}" for alias in node.names if module_path(root, f"{base}.{alias.name}")]
    return tuple(m for m in modules if m.split(".")[0] == PACKAGE)


def runs_code(root: Path, path: Path) -> bool:
    """False for a package `__init__.py` that holds only its docstring (importing it runs nothing)."""
    if path.name != "__init__.py":
        return True
    body = ast.parse((root / path).read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def entry_points(cmd: str) -> tuple[list[Path], list[str]]:
    """The scripts (`*.py` arguments) and `-m` modules of a stage command."""
    tokens = shlex.split(cmd)
    scripts = [Path(t) for t in tokens if t.endswith(".py")]
    modules = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "-m"]
    return scripts, modules


def required_files(root: Path, cmd: str) -> list[str]:
    """Every project file the stage command's code runs, transitively (see the module docstring)."""
    root = Path(root).resolve()
    scripts, modules = entry_points(cmd)
    todo: list[Path] = [s for s in scripts if (root / s).is_file()]
    for module in modules:
        found = module_path(root, module)
        todo += _package_inits(root, module) + ([found] if found else [])
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(root, path):
            found = module_path(root, module)
            todo += _package_inits(root, module) + ([found] if found else [])
    return sorted(str(p) for p in seen if runs_code(root, p))


def _covers(dep: str, path: str) -> bool:
    return path == dep or Path(dep) in Path(path).parents


def _code_files(root: Path, dep: str) -> list[str]:
    """The Python files a code dep stands for (itself, or every `.py` under the folder)."""
    target = root / dep
    if target.is_dir():
        return sorted(str(p.relative_to(root)) for p in target.rglob("*.py") if "__pycache__" not in p.parts)
    return [dep]


def stage_problems(root: Path, stage: str, cmd: str, deps: Sequence[str]) -> list[Problem]:
    """What is wrong with one stage's deps (see `check`)."""
    root = Path(root).resolve()
    required = required_files(root, cmd)
    problems = [Problem(stage, f, "missing") for f in required if not any(_covers(d, f) for d in deps)]
    for dep in deps:
        if Path(dep).parts[0] not in CODE_ROOTS:
            continue
        covered = [f for f in _code_files(root, dep) if f in required]
        if not covered:
            problems.append(Problem(stage, dep, "unused"))
        elif (root / dep).is_dir():  # a folder dep must not hold code the stage never runs
            idle = [f for f in _code_files(root, dep) if f not in required and runs_code(root, Path(f))]
            problems += [Problem(stage, f"{dep} (holds {f})", "unused") for f in idle]
    return problems


def dvc_stages(root: Path) -> Iterable[tuple[str, str, list[str]]]:
    """(name, cmd, deps) of every stage in `root/dvc.yaml`, as DVC resolves them (`foreach` items too)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if stage.cmd:
                cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
                yield stage.name, cmd, [str(d.def_path) for d in stage.deps]


def check(root: Path) -> list[Problem]:
    """Every problem of every stage of `root/dvc.yaml`; empty when the deps are right."""
    return [p for name, cmd, deps in dvc_stages(root) for p in stage_problems(root, name, cmd, deps)]


def main(root: Path, only_check: bool = False) -> int:
    """`divwrite deps [--check]`: print each stage's required files, or only the problems."""
    if not only_check:
        for name, cmd, _ in dvc_stages(root):
            print(f"{name}:")  # noqa: T201 - the command's output
            print("\n".join(f"  - {f}" for f in required_files(root, cmd)))  # noqa: T201
    problems = check(root)
    for problem in problems:
        print(problem)  # noqa: T201 - the command's output
    return 1 if problems else 0
