"""A hub-style base model (a local folder standing in for a hub id) through the real DVC stages with
LoRA from params: SFT trains an adapter, DDPO and ORPO train it further, generation loads it;
the hub tokenizer had no chat template and gets the fallback one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import subprocess_env
from safetensors.torch import load_file

from divwrite.data.corpus.generator import generate_corpus
from divwrite.ops.pipeline import prepare_smoke_copy
from divwrite.training.modeling import build_builtin_model
from divwrite.training.tokenizer import FALLBACK_CHAT_TEMPLATE, train_bpe_tokenizer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _hub_style_model(path: Path) -> Path:
    """A small Llama + BPE tokenizer saved like a hub checkpoint, without a chat template."""
    texts = [r for rec in generate_corpus(n_prompts=40, seed=1).records for r in rec["comment_texts"]]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=512, out_dir=path)
    (path / "chat_template.jinja").unlink()  # a base model's tokenizer often has none
    tokenizer.chat_template = None
    config = json.loads((path / "tokenizer_config.json").read_text())
    assert "chat_template" not in config and not (path / "chat_template.jinja").exists()
    model = build_builtin_model(
        tokenizer, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, max_position_embeddings=384, seed=3
    )
    model.save_pretrained(path)
    return path


def test_hub_model_with_lora_through_the_stages(tmp_path):
    hub = _hub_style_model(tmp_path / "hub-model")
    work = prepare_smoke_copy(REPO, tmp_path / "project")
    params_path = work / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["model"]["base"] = str(hub)
    params["model"]["lora"].update(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))

    env = subprocess_env()
    targets = ["train@ddpo-both", "train@orpo", "generate@ddpo-both"]
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", *targets],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    base_tok = json.loads((work / "models/base/tokenizer_config.json").read_text())
    template = base_tok.get("chat_template") or (work / "models/base/chat_template.jinja").read_text()
    assert template == FALLBACK_CHAT_TEMPLATE

    adapters = {}
    for method in ("sft", "ddpo-both", "orpo"):
        folder = work / "models" / method
        assert not (folder / "model.safetensors").exists()  # an adapter, not a full copy of the model
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(hub) and config["r"] == 4
        adapters[method] = load_file(str(folder / "adapter_model.safetensors"))
        assert adapters[method] and all("lora_" in k for k in adapters[method])
    # The preference methods continue the SFT adapter (same tensors), and changed it.
    for method in ("ddpo-both", "orpo"):
        assert adapters[method].keys() == adapters["sft"].keys()
        assert any(not torch.equal(adapters[method][k], adapters["sft"][k]) for k in adapters["sft"])
    report = json.loads((work / "reports/train/ddpo-both.json").read_text())
    assert report["steps"] > 0 and report["train_loss"] > 0
    generations = pd.read_parquet(work / "data/generations/ddpo-both.parquet")
    assert len(generations) > 0 and generations["text"].str.len().gt(0).mean() > 0.5
