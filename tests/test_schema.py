"""The params schema (`divwrite.core.schema`): params.yaml and every profile fit it; a misspelt or
mistyped key fails at load time naming the dotted key, the value and what was expected, in a
stage and in `divwrite repro` before DVC starts."""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import subprocess_env

from divwrite.core.params import ParamsError, deep_merge, load_params, read_params, validate_params
from divwrite.core.schema import Method, Params

REPO = Path(__file__).resolve().parents[1]
RAW = read_params(REPO / "params.yaml")


def broken(**changes) -> dict:
    """params.yaml with `section.key` values replaced or added (dotted names)."""
    params = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        *path, key = dotted.split("__")
        node = params
        for part in path:
            node = node[part]
        node[key] = value
    return params


def test_params_yaml_and_every_profile_fit():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params) and params.train.methods["ddpo-both"].weights == "both"
    for profile in sorted((REPO / "profiles").glob("*.yaml")):
        validate_params(deep_merge(RAW, read_params(profile)), label=str(profile))


def test_sections_dump_back_to_what_the_yaml_holds():
    """The training checkpoints' fingerprints hash these sections: a whole number stays an int."""
    params = load_params(REPO / "params.yaml")
    for section in ("model", "sft", "dpo", "orpo", "reward", "generate", "deviate", "corpus"):
        dumped = getattr(params, section).model_dump()
        assert dumped == RAW[section], section
        assert [type(v) for v in dumped.values()] == [type(v) for v in RAW[section].values()], section
    for name, method in params.train.methods.items():
        assert method.model_dump(exclude_none=True) == RAW["train"]["methods"][name]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"pair__gapp": 3}, r"pair\.gapp: unknown key \(got 3\); pair has: gap"),
        ({"gapp": 3}, r"gapp: unknown key \(got 3\); params\.yaml has: seed, data_seed, data"),
        ({"sft__epochs": "six"}, r"sft\.epochs: expected a number \(got 'six'\)"),
        ({"dpo__learning_rate": "5e-6"}, r"dpo\.learning_rate: input should be a valid number \(got '5e-6'\)"),
        ({"filter__max_tokens": 384.5}, r"filter\.max_tokens: input should be a valid integer \(got 384\.5\)"),
        ({"deviate__high_quality_first": "yes"}, r"deviate\.high_quality_first: input should be a valid boolean"),
        ({"generate__backend": "vlm"}, r"generate\.backend: input should be 'transformers' or 'vllm' \(got 'vlm'\)"),
        ({"model__lora": [8, 16]}, r"model\.lora: input should be a valid dictionary or instance of LoraParams"),
        ({"ingest__test_fraction": 1.0}, r"ingest\.test_fraction: input should be less than 1"),
        ({"gates__mean_prompt_words": [9, 2]}, r"gates: mean_prompt_words: lower bound 9\.0 > upper bound 2\.0"),
        ({"train__methods__dpo__loss": "dop"}, r"train\.methods\.dpo\.loss: input should be 'sft', 'dpo' or 'orpo'"),
        ({"train__methods__sft__weights": "sem"}, r"train\.methods\.sft: weights apply to the dpo and orpo losses only"),
        ({"train__methods__dpo__init": "sfft"}, r"train: methods\.dpo: init 'sfft' is neither 'base' nor a method"),
        ({"model__hidden_size": 190}, r"model: hidden_size 190 is not divisible by num_heads 4"),
    ],
)  # fmt: skip
def test_a_bad_key_names_its_dotted_path_value_and_expectation(changes, message):
    with pytest.raises(ParamsError, match=r"^params\.yaml: " + message):
        validate_params(broken(**changes))


def test_every_problem_is_reported_on_its_own_line():
    with pytest.raises(ParamsError) as err:
        validate_params(broken(pair__gapp=3, sft__epochs="six", seed=-1))
    lines = str(err.value).splitlines()
    assert lines[0] == "params.yaml: " and len(lines) == 4
    assert {line.split(":")[0].strip() for line in lines[1:]} == {"pair.gapp", "seed", "sft.epochs"}


def test_the_sections_are_read_only_and_methods_name_their_trainer():
    params = load_params(REPO / "params.yaml")
    with pytest.raises(Exception, match="frozen"):
        params.pair.gap = 1.0
    assert Method(init="sft", loss="orpo", data="weighted", weights="sty").trainer_method == "dorpo-sty"
    assert Method(init="sft", loss="dpo", data="weighted", weights="qg").trainer_method == "ddpo-qg"
    assert params.train.methods["dpo"].trainer_method == "dpo"


def _scratch_project(tmp_path: Path, **changes) -> Path:
    (tmp_path / "stages").mkdir()
    shutil.copy(REPO / "stages" / "pair.py", tmp_path / "stages" / "pair.py")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(broken(**changes), sort_keys=False))
    return tmp_path


def test_a_stage_stops_at_load_time_naming_the_key(tmp_path):
    """`pair.gapp: 3` in params.yaml: the stage exits 1 before reading or writing anything."""
    root = _scratch_project(tmp_path, pair__gapp=3)
    proc = subprocess.run(
        [sys.executable, "stages/pair.py"], cwd=root, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert "pair: ParamsError: params.yaml: pair.gapp: unknown key (got 3); pair has: gap" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in root.iterdir()) == ["params.yaml", "stages"]  # nothing written, no MLflow store


def test_divwrite_repro_refuses_bad_params_before_dvc_starts(tmp_path, monkeypatch, caplog):
    from divwrite.ops.pipeline import run_pipeline

    root = _scratch_project(tmp_path, sft__epochs="six")
    monkeypatch.chdir(root)  # run_pipeline works from the project's root; restored after the test
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert run_pipeline([], root=root) == 2
    assert "sft.epochs: expected a number (got 'six')" in caplog.text
    assert not (root / "mlflow.db").exists()  # no MLflow run, no DVC
