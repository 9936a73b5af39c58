"""The ridge reward model (METHOD.md, Training, "Reward model")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from divwrite.embedders import load_embedder
from divwrite.records import RESPONSE_COLUMNS, read_json
from divwrite.reward import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    RidgeRewardModel,
    format_reward_input,
    ranking_metrics,
    ridge_fit,
    train_reward_model,
)

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


def synthetic_responses(n_prompts: int = 24, per_prompt: int = 6, seed: int = 0) -> pd.DataFrame:
    """A RESPONSE_COLUMNS table whose score depends on the response's craft (vivid vs flat), plus noise."""
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
            upvotes = float(max(0, round((30 if vivid else 5) + rng.normal(0, 4))))
            rows.append((pid, prompt, f"{pid}-{r}", text, upvotes, upvotes / 25.0 - 1.0))
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)


@pytest.fixture(scope="module")
def minilm():
    return load_embedder("all-MiniLM-L6-v2")


def test_input_format_is_exactly_methods() -> None:
    assert format_reward_input("P?", "R!") == "<prompt>P?</prompt><response>R!</response>"


def test_ridge_fit_matches_augmented_least_squares() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.7 + rng.normal(0, 0.1, size=40)
    lam = 2.5
    coef, intercept = ridge_fit(x, y, lam)
    # Intercept unpenalised: centre, then solve the penalised normal equations by hand.
    xc, yc = x - x.mean(0), y - y.mean()
    expected = np.linalg.inv(xc.T @ xc + lam * np.eye(5)) @ xc.T @ yc
    np.testing.assert_allclose(coef, expected, rtol=1e-10)
    assert intercept == pytest.approx(y.mean() - x.mean(0) @ expected)
    # ridge -> 0 gives ordinary least squares with intercept
    ols = np.linalg.lstsq(np.c_[x, np.ones(40)], y, rcond=None)[0]
    coef0, b0 = ridge_fit(x, y, 0.0)
    np.testing.assert_allclose(np.r_[coef0, b0], ols, rtol=1e-8)


def test_ranking_metrics_by_hand() -> None:
    pids = ["a", "a", "a", "b", "b", "c"]
    scores = np.array([0.1, 0.5, 0.5, -1.0, 1.0, 0.0])
    pred = np.array([0.0, 1.0, 2.0, 3.0, 3.0, 9.0])
    # prompt a: pairs with different scores (0,1): right, (0,2): right; (1,2) same score, skipped.
    # prompt b: (3,4): predicted tie -> 1/2. prompt c: no pair. -> (1 + 1 + 0.5) / 3
    out = ranking_metrics(pred, scores, pids)
    assert out["pairwise_accuracy"] == pytest.approx(2.5 / 3)
    assert out["n_pairs"] == 3 and out["n"] == 6
    from scipy.stats import spearmanr

    assert out["spearman"] == pytest.approx(spearmanr(pred, scores).statistic)


def test_ranking_metrics_fallbacks_are_finite() -> None:
    out = ranking_metrics(np.ones(3), np.array([0.0, 1.0, 2.0]), ["a", "b", "c"])
    assert out["spearman"] == 0.0 and out["pairwise_accuracy"] == 0.5 and out["n_pairs"] == 0


def test_fit_predict_ranks_vivid_over_flat(minilm) -> None:
    df = synthetic_responses(n_prompts=12, per_prompt=4)
    model = RidgeRewardModel(minilm, ridge=1.0).fit(df["prompt"].tolist(), df["response"].tolist(), df["score"])
    pred = model.predict(df["prompt"].tolist(), df["response"].tolist())
    assert pred.shape == (len(df),) and pred.dtype == np.float64
    metrics = model.evaluate(df["prompt"].tolist(), df["response"].tolist(), df["score"], df["prompt_id"].tolist())
    assert set(metrics) >= {"spearman", "pairwise_accuracy", "n"}
    assert metrics["spearman"] > 0.5 and metrics["pairwise_accuracy"] > 0.65


def test_train_reward_model_holds_out_prompts_and_refits_on_all(minilm) -> None:
    df = synthetic_responses()
    model, metrics = train_reward_model(df, embedder=minilm, ridge=1.0, val_fraction=0.25, seed=0)
    assert metrics["val_prompts"] == 6 and metrics["n_rows"] == len(df)
    assert metrics["val_n"] == 6 * 6
    assert model.n_train_ == len(df)  # refit on every row
    # Held-out prompts never seen: vivid stories still rank above flat ones. Same-class
    # pairs differ only by noise (chance), so the ceiling is about 0.6 + 0.4 / 2 = 0.8.
    assert metrics["val_spearman"] > 0.5
    assert metrics["val_pairwise_accuracy"] > 0.65
    assert all(np.isfinite(v) for v in metrics.values())


def test_save_load_roundtrip_without_pickle(tmp_path: Path, minilm) -> None:
    df = synthetic_responses(n_prompts=6, per_prompt=4)
    model = RidgeRewardModel(minilm, ridge=0.5).fit(df["prompt"].tolist(), df["response"].tolist(), df["score"])
    model.save(tmp_path / "rm")
    assert sorted(p.name for p in (tmp_path / "rm").iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE])
    config = read_json(tmp_path / "rm" / CONFIG_FILE)
    assert config["embedder"] == "all-MiniLM-L6-v2" and config["ridge"] == 0.5
    assert config["input_format"] == "<prompt>{prompt}</prompt><response>{response}</response>"
    loaded = RidgeRewardModel.load(tmp_path / "rm")  # resolves the embedder by name (cached)
    prompts, responses = df["prompt"].tolist()[:5], df["response"].tolist()[:5]
    np.testing.assert_allclose(loaded.predict(prompts, responses), model.predict(prompts, responses), rtol=1e-12)
    from safetensors.numpy import load_file

    assert set(load_file(str(tmp_path / "rm" / WEIGHTS_FILE))) == {"coef", "intercept"}


def test_predict_before_fit_raises(minilm) -> None:
    with pytest.raises(RuntimeError):
        RidgeRewardModel(minilm).predict(["p"], ["r"])
