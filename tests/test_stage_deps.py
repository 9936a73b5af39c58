"""Every DVC stage depends on every project file its code runs (`divwrite.ops.deps`), and on no
code file it never runs: `dvc repro` re-runs exactly what a change affects."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from divwrite.ops.deps import Problem, check, required_files, stage_problems

REPO = Path(__file__).resolve().parents[1]


def test_every_stage_depends_on_the_code_it_imports():
    problems = check(REPO)
    assert not problems, "dvc.yaml deps do not match the stages' imports:\n" + "\n".join(map(str, problems))


def test_the_closure_follows_imports_transitively():
    files = required_files(REPO, "python stages/evaluate.py")
    # evaluate -> scoring -> the corpus detectors (ground truth); reward model; embedders; the core
    assert "stages/evaluate.py" in files
    assert "src/divwrite/core/stage.py" in files and "src/divwrite/core/records.py" in files
    assert any(f.startswith("src/divwrite/data/corpus/detectors") for f in files)
    assert "src/divwrite/weighting/embedders.py" in files
    # ... but not what only other stages run
    assert not any("training/trainers" in f or "ops/" in f for f in files)
    # `-m module` entry points count too (the train stage runs divwrite.training.launch)
    launch = required_files(REPO, "python -m divwrite.training.launch --config_file c.yaml stages/train.py sft")
    assert "src/divwrite/training/launch.py" in launch and "stages/train.py" in launch


def test_a_docstring_only_package_init_is_not_required(tmp_path):
    src = tmp_path / "src" / "divwrite" / "sub"
    src.mkdir(parents=True)
    (tmp_path / "src" / "divwrite" / "__init__.py").write_text('"""Only a docstring."""\n')
    (src / "__init__.py").write_text('"""Only a docstring."""\n')
    (src / "mod.py").write_text("X = 1\n")
    (src / "unused.py").write_text("Y = 2\n")
    (tmp_path / "run.py").write_text("from divwrite.sub import mod\n")
    assert required_files(tmp_path, "python run.py") == ["run.py", "src/divwrite/sub/mod.py"]
    (src / "__init__.py").write_text('"""Now it runs code."""\nimport os\n')
    assert "src/divwrite/sub/__init__.py" in required_files(tmp_path, "python run.py")
    # a folder dep holding a module the stage never imports re-runs it for nothing
    problems = stage_problems(tmp_path, "s", "python run.py", ["run.py", "src/divwrite/sub"])
    assert [p.kind for p in problems] == ["unused"] and "unused.py" in problems[0].path


@pytest.mark.parametrize("stage", ["evaluate", "train"])
def test_a_removed_dep_is_named_with_its_stage(tmp_path, stage):
    """Drop one code dep of a stage from a copy of dvc.yaml: the check names that stage and file."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for folder in ("src", "stages", "configs", ".dvc"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)  # DVC opens a project inside git
    spec = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    body = spec["stages"][stage].get("do", spec["stages"][stage])
    removed = next(d for d in body["deps"] if d.startswith("src/"))
    body["deps"].remove(removed)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    problems = check(tmp_path)
    assert problems and all(isinstance(p, Problem) and p.kind == "missing" for p in problems)
    assert {p.stage.split("@")[0] for p in problems} == {stage}
    assert all(p.path == removed or p.path.startswith(removed.rstrip("/") + "/") for p in problems)
