"""Data gates (src/divwrite/data/gates.py, the suites in data/expectations.py): clean tables
pass, each kind of bad table is stopped with a message that names the failing expectation
and the offending id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from divwrite.core.params import ParamsError, load_params, parse_section
from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.core.schema import GatesParams
from divwrite.core.stage import GateError
from divwrite.data.expectations import count_words
from divwrite.data.filtering import apply_removals, removal_reasons, removal_stats
from divwrite.data.gates import check_pairs, check_responses, compact_summary, report_gate, write_summary
from divwrite.weighting.deviation import QG_COLUMNS, weight_pairs

REPO = Path(__file__).resolve().parents[1]
N_PROMPTS, PER_PROMPT = 12, 4

BOUNDS = GatesParams(
    min_prompts=10,
    min_response_words=1,
    max_response_words=5000,
    mean_response_words=(5, 2000),
    median_response_words=(3, 2000),
    mean_prompt_words=(2, 500),
    max_responses_per_prompt=100,
    mean_responses_per_prompt=(1.5, 50),
    max_empty_share=0.2,
    min_pairs_per_prompt=1,
    min_gap_share=0.5,
    data_docs=False,
)


@pytest.fixture
def responses() -> pd.DataFrame:
    """12 prompts x 4 responses; response j of a prompt has 10 * (j + 1) words and 10 * j upvotes."""
    rows = []
    for p in range(N_PROMPTS):
        pid = f"p{p:02d}"
        for j in range(PER_PROMPT):
            rows.append(
                {
                    "prompt_id": pid,
                    "prompt": f"A dragon learns to cook {p}\nThe kitchen is on fire",  # 11 words
                    "response_id": f"{pid}-{j}",
                    "response": " ".join(["word"] * (10 * (j + 1))),
                    "upvotes": float(10 * j),
                    "score": -1.0 + 2.0 * j / (PER_PROMPT - 1),
                }
            )
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)


@pytest.fixture
def pairs(responses: pd.DataFrame) -> pd.DataFrame:
    """Per prompt: pairs (3 > 1) and (2 > 0), each response once, deviation weights of mean 1."""
    weights = {0: 0.5, 1: 1.5, 2: 1.25, 3: 0.75}  # mean over the prompt's 4 responses: 1
    by_id = responses.set_index("response_id")
    rows = []
    for pid, group in responses.groupby("prompt_id", sort=True):
        for k, (c, r) in enumerate([(3, 1), (2, 0)]):
            chosen, rejected = by_id.loc[f"{pid}-{c}"], by_id.loc[f"{pid}-{r}"]
            rows.append(
                {
                    "pair_id": f"{pid}-p{k}",
                    "prompt_id": pid,
                    "prompt": group["prompt"].iloc[0],
                    "pair_index": k,
                    "chosen_id": f"{pid}-{c}",
                    "chosen": chosen["response"],
                    "chosen_upvotes": chosen["upvotes"],
                    "chosen_score": chosen["score"],
                    "rejected_id": f"{pid}-{r}",
                    "rejected": rejected["response"],
                    "rejected_upvotes": rejected["upvotes"],
                    "rejected_score": rejected["score"],
                    "w_chosen_both": weights[c],
                    "w_rejected_both": weights[r],
                }
            )
    return pd.DataFrame(rows, columns=[*PAIR_COLUMNS, "w_chosen_both", "w_rejected_both"])


def test_bounds_from_params_yaml():
    gates = yaml.safe_load((REPO / "params.yaml").read_text())["gates"]
    bounds = load_params(REPO / "params.yaml").gates
    assert bounds.mean_response_words == tuple(float(x) for x in gates["mean_response_words"])
    assert bounds.min_prompts == gates["min_prompts"]
    with pytest.raises(
        ParamsError, match=r"gates: min_promtps: unknown key \(got 3\); gates has: min_prompts, min_response_words"
    ):
        parse_section(GatesParams, {**gates, "min_promtps": 3}, label="gates")
    with pytest.raises(ParamsError, match="mean_prompt_words: lower bound 9.0 > upper bound 2.0"):
        parse_section(GatesParams, {**gates, "mean_prompt_words": [9, 2]}, label="gates")


def test_count_words():
    words = count_words(pd.Series(["a b\n c", "", "  ", "one"]))
    assert words.tolist() == [3, 0, 0, 1] and words.dtype == np.int64
    assert np.isnan(count_words(pd.Series(["a", None]))[1])


def test_import_is_lazy():
    """Stage modules import gates without paying for great_expectations (~4 s)."""
    code = "import sys, divwrite.data.gates; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clean_responses_pass(responses, tmp_path):
    before = responses.copy()
    summary = check_responses(responses, BOUNDS, name="filter", min_responses_per_prompt=2)
    pd.testing.assert_frame_equal(responses, before)  # the caller's frame is untouched

    assert summary["gate"] == "filter" and summary["success"] is True
    assert summary["n_rows"] == N_PROMPTS * PER_PROMPT
    assert summary["tables"] == {
        "responses": {"n_rows": 48, "success": True},
        "prompts": {"n_rows": 12, "success": True},
    }
    exp = summary["expectations"]
    assert all(e["success"] for e in exp.values())
    assert exp["responses/expect_column_mean_to_be_between/n_words"]["observed"] == 25  # mean of 10..40
    assert exp["prompts/expect_column_mean_to_be_between/n_prompt_words"]["observed"] == 11
    assert exp["prompts/expect_table_row_count_to_be_between"]["observed"] == N_PROMPTS
    assert exp["responses/expect_column_values_to_be_in_type_list/upvotes"]["observed"] == "float64"
    null = exp["responses/expect_column_values_to_not_be_null/response"]
    assert null == {
        "type": "expect_column_values_to_not_be_null",
        "table": "responses",
        "column": "response",
        "success": True,
        "severity": "critical",
        "observed_metric": "unexpected_count",
        "observed": 0,
    }

    # A stable DVC metric: plain JSON, the same bytes for the same data.
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_summary(summary, first)
    write_summary(check_responses(responses, BOUNDS, name="filter", min_responses_per_prompt=2), second)
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a.details.json").read_bytes() == (tmp_path / "b.details.json").read_bytes()
    assert json.loads(first.read_text()) == {
        "success": True,
        "expectations": len(exp),
        "failed": 0,
        "warnings": 0,
        "tables": summary["tables"],
    }
    assert json.loads((tmp_path / "a.details.json").read_text())["expectations"].keys() == exp.keys()


def _null_response(df):
    df.loc[5, "response"] = None
    return df


def _duplicate_id(df):
    df.loc[6, "response_id"] = df.loc[5, "response_id"]
    return df


def _bad_score(df):
    df.loc[7, "score"] = 1.5
    return df


def _long_response(df):
    df.loc[9, "response"] = " ".join(["word"] * 6000)
    return df


def _few_prompts(df):
    return df[df["prompt_id"] < "p03"]


def _missing_column(df):
    return df.drop(columns="score")


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_null_response, ["expect_column_values_to_not_be_null(column='response')", "response_id='p01-1'"]),
        (_duplicate_id, ["expect_column_values_to_be_unique(column='response_id')", "response_id='p01-1'"]),
        (_bad_score, ["expect_column_values_to_be_between(column='score'", "response_id='p01-3'", "score=1.5"]),
        (_long_response, ["column='n_words'", "max_value=5000", "response_id='p02-1'", "n_words=6000"]),
        (_few_prompts, ["prompts: expect_table_row_count_to_be_between(min_value=10)", "observed: 3"]),
        (_missing_column, ["expect_table_columns_to_match_set", "missing columns: ['score']"]),
    ],
    ids=["null-response", "duplicate-id", "score-1.5", "6000-words", "few-prompts", "missing-column"],
)
def test_bad_responses_rejected(responses, corrupt, expected):
    with pytest.raises(GateError) as err:
        check_responses(corrupt(responses), BOUNDS)
    message = str(err.value)
    assert message.startswith("data gate 'ingest' failed")
    for text in expected:
        assert text in message
    assert err.value.summary["success"] is False


def test_before_filter_empty_and_long_bodies_are_warnings(responses):
    """Ingest's output still holds empty/deleted and over-long bodies (filter drops them):
    there they are warnings, after filter they stop the stage."""
    responses.loc[5, "response"] = ""
    responses = _long_response(responses)
    summary = check_responses(responses, BOUNDS, before_filter=True)
    assert summary["success"] is True and summary["failed"] == 0
    assert len(summary["warnings"]) == 1 and "response_id='p02-1' n_words=6000" in summary["warnings"][0]
    with pytest.raises(GateError, match=r"response_id='p01-1' n_words=0"):
        check_responses(responses, BOUNDS, name="filter")
    # more than max_empty_share (20%) empty or deleted bodies: a second warning
    responses.loc[responses.index % 4 == 0, "response"] = "[deleted]"
    summary = check_responses(responses, BOUNDS, before_filter=True)
    assert summary["success"] is True and len(summary["warnings"]) == 2
    assert "column='empty_or_deleted'" in summary["warnings"][1] and "mostly=0.8" in summary["warnings"][1]
    entry = summary["expectations"]["responses/expect_column_values_to_be_in_set/empty_or_deleted"]
    assert entry["severity"] == "warning" and entry["success"] is False


def test_responses_per_prompt(responses):
    with pytest.raises(GateError, match=r"column='n_responses'.*\n.*\n    prompt_id='p00' n_responses=3"):
        check_responses(responses.drop(index=0), BOUNDS, name="filter", min_responses_per_prompt=4)
    few = BOUNDS.model_copy(update={"max_responses_per_prompt": 3, "mean_responses_per_prompt": (1.5, 3.5)})
    with pytest.raises(GateError) as err:
        check_responses(responses, few, name="filter")
    assert "prompt_id='p00' n_responses=4" in str(err.value)  # the max
    assert "expect_column_mean_to_be_between(column='n_responses'" in str(err.value) and "observed: 4" in str(err.value)


def _filtered(df: pd.DataFrame, lengths: np.ndarray, max_tokens: int) -> tuple[pd.DataFrame, dict]:
    """The filter stage's path on one table: its rules, what it keeps, what it removed."""
    reasons = removal_reasons(df, token_lengths=lengths, max_tokens=max_tokens)
    kept, _ = apply_removals(df, reasons)
    return kept, removal_stats(df, reasons)


def test_filter_that_removes_half_and_the_better_scored_warns(responses, tmp_path, monkeypatch, caplog):
    """The length rule takes responses 2 and 3 of each prompt (scores 1/3 and 1; kept: -1 and
    -1/3): 50% of the split, mean score 0.67 against -0.67 kept. One warning names the rule and
    the numbers (the `all` row says nothing more); the stage goes on."""
    lengths = np.tile([10, 20, 30, 40], N_PROMPTS)  # tokens as the words: 10 * (j + 1)
    kept, stats = _filtered(responses, lengths, max_tokens=25)
    removed = stats["removed"]["too_long"]
    assert removed["responses"] == 24 and removed["share"] == 0.5 and removed["removed_score_higher"] is True
    assert (stats["kept"]["mean_score"], removed["mean_score"]) == (-0.666667, 0.666667)
    summary = check_responses(kept, BOUNDS, name="filter", min_responses_per_prompt=2, removal={"train": stats})
    assert summary["success"] is True and summary["failed"] == 0
    assert summary["warnings"] == [
        "filter: rule 'too_long' removed 50.0% of train responses (24 of 48; > gates.max_removed_share 0.20); "
        "removed responses score higher than kept (mean score 0.67 vs -0.67, gap 1.33 > 2 x its standard error 0.10): "
        'the filter shifts what "good" means'
    ]
    exp = summary["expectations"]
    for key in ("removals/expect_column_values_to_be_between/share",
                "removals/expect_column_values_to_be_in_set/removed_score_higher"):  # fmt: skip
        assert exp[key]["severity"] == "warning" and exp[key]["success"] is False
        assert exp[key]["observed"] == 2  # the too_long row and the all row
    assert summary["tables"]["removals"] == {"n_rows": 7, "success": True}  # 6 rules and all

    # The gate report holds the text (reports/gates/filter.json), and it is logged (stderr).
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="divwrite.data.gates"):
        compact = report_gate(summary)
    assert compact["warnings"] == 1 and compact["warning_messages"] == summary["warnings"]
    assert json.loads((tmp_path / "reports/gates/filter.json").read_text())["warning_messages"] == summary["warnings"]
    assert (
        "filter: data gate warning (the stage goes on)" in caplog.text
        and "rule 'too_long' removed 50.0%" in caplog.text
    )


def test_filter_that_removes_little_or_unbiased_does_not_warn(responses):
    """2 of 48 over-long (too few to compare); then 6 deleted bodies of scores -1/3 and 1/3
    (12.5%, the same mean as the kept, 0): no warning, and the report keeps its old shape."""
    lengths = np.full(len(responses), 10)
    lengths[[3, 7]] = 99
    kept, stats = _filtered(responses, lengths, max_tokens=50)
    assert stats["removed"]["too_long"]["mean_score"] == 1.0 > stats["kept"]["mean_score"]
    summary = check_responses(kept, BOUNDS, name="filter", min_responses_per_prompt=2, removal={"train": stats})
    assert summary["warnings"] == [] and "warning_messages" not in compact_summary(summary)

    deleted = responses.copy()
    deleted.loc[[1, 6, 9, 14, 17, 22], "response"] = "[deleted]"  # j = 1, 2, 1, 2, 1, 2
    kept, stats = _filtered(deleted, np.full(len(responses), 10), max_tokens=50)
    assert stats["removed"]["deleted"]["share"] == 0.125 and stats["removed"]["deleted"]["score_gap"] == 0.0
    summary = check_responses(kept, BOUNDS, name="filter", min_responses_per_prompt=2, removal={"train": stats})
    assert summary["warnings"] == []


def test_filter_warns_on_the_share_of_every_rule_together(responses):
    """Two rules of 12.5% each remove 25% together, lower-scored (j = 0): one warning, about all rules."""
    lowest = responses.index[responses["response_id"].str.endswith("-0")]
    lengths = np.full(len(responses), 10)
    lengths[lowest[:6]] = 99
    responses.loc[lowest[6:], "response"] = "[deleted]"
    kept, stats = _filtered(responses, lengths, max_tokens=50)
    assert stats["removed"]["all"]["share"] == 0.25
    summary = check_responses(kept, BOUNDS, name="filter", min_responses_per_prompt=2, removal={"train": stats})
    assert summary["warnings"] == [
        "filter: all rules together removed 25.0% of train responses (12 of 48; > gates.max_removed_share 0.20); "
        "mean score removed -1.00 vs kept 0.33"
    ]
    looser = BOUNDS.model_copy(update={"max_removed_share": 0.3})
    assert (
        check_responses(kept, looser, name="filter", min_responses_per_prompt=2, removal={"train": stats})["warnings"]
        == []
    )


def test_upvote_gap_warning(pairs):
    """Pairs from the fallback rule (upvotes closer than the gap) beyond 1 - min_gap_share: a warning."""
    assert check_pairs(pairs, BOUNDS, gap=10)["warnings"] == []  # every pair differs by 20 upvotes
    summary = check_pairs(pairs, BOUNDS, gap=25)
    assert summary["success"] is True and len(summary["warnings"]) == 1
    assert (
        "column='upvote_gap'" in summary["warnings"][0]
        and f"{2 * N_PROMPTS} of {2 * N_PROMPTS} rows" in summary["warnings"][0]
    )


def test_clean_pairs_pass(pairs):
    summary = check_pairs(pairs, BOUNDS, name="deviate")
    assert summary["success"] is True and summary["n_rows"] == 2 * N_PROMPTS
    assert summary["tables"]["pair_responses"] == {"n_rows": 4 * N_PROMPTS, "success": True}
    exp = summary["expectations"]
    assert exp["pair_prompts/expect_column_values_to_be_between/w_both_mean_minus_1"]["success"] is True
    assert (
        exp["pairs/expect_column_pair_values_a_to_be_greater_than_b/chosen_upvotes,rejected_upvotes"]["observed"] == 0
    )
    # Without weight columns (the pair stage's output) the weight checks are simply absent.
    plain = check_pairs(pairs[PAIR_COLUMNS], BOUNDS)
    assert not any(e["column"].startswith("w_") for e in plain["expectations"].values())


class LengthEmbedder:
    """2-d embeddings from a text's length (the fixture's 4 lengths a prompt: 2 directions, 1.67 rad apart)."""

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        angles = np.array([(len(t) * 37 % 100) / 30.0 for t in texts])
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_deviate_output_passes_with_every_weight_family(pairs):
    """`weight_pairs`' columns, the quality-gated `w_*_qg` included, are weight families whose
    per-prompt mean over R is 1 (docs/weighting.md), also with the minimum-weight floor."""
    for min_weight in (0.0, 0.9):
        weighted = weight_pairs(
            pairs[PAIR_COLUMNS], {"sem": LengthEmbedder(), "sty": LengthEmbedder()}, min_weight=min_weight
        )
        assert set(QG_COLUMNS) <= set(weighted.columns) and (weighted["w_chosen_qg"] != 1.0).all()
        exp = check_pairs(weighted, BOUNDS, name="deviate", min_weight=min_weight)["expectations"]
        for fam in ("w_sem", "w_sty", "w_both", "w_qg"):
            assert exp[f"pair_prompts/expect_column_values_to_be_between/{fam}_mean_minus_1"]["success"] is True


def _equal_upvotes(df):
    df.loc[3, "chosen_upvotes"] = df.loc[3, "rejected_upvotes"]
    return df


def _same_response(df):
    df.loc[4, "rejected_id"] = df.loc[4, "chosen_id"]
    return df


def _reused_response(df):
    df.loc[3, "rejected_id"] = df.loc[2, "rejected_id"]  # p01-0 in pairs p01-p0 and p01-p1
    return df


def _weights_mean_not_1(df):
    df.loc[df["prompt_id"] == "p04", "w_chosen_both"] *= 2.0
    return df


def _negative_weight(df):
    df.loc[5, "w_rejected_both"] = -0.25
    return df


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_equal_upvotes, ["expect_column_pair_values_a_to_be_greater_than_b", "pair_id='p01-p1'"]),
        (_same_response, ["column='same_response'", "pair_id='p02-p0' same_response=True"]),
        (
            _reused_response,
            [
                "pair_responses: expect_column_values_to_be_unique(column='response_id')",
                "pair_id='p01-p0' response_id='p01-1'",
            ],
        ),
        (_weights_mean_not_1, ["column='w_both_mean_minus_1'", "prompt_id='p04' w_both_mean_minus_1=0.5"]),
        (
            _negative_weight,
            ["expect_column_values_to_be_between(column='w_rejected_both'", "pair_id='p02-p1' w_rejected_both=-0.25"],
        ),
    ],  # fmt: skip
    ids=["equal-upvotes", "chosen-is-rejected", "response-in-two-pairs", "weight-mean-not-1", "negative-weight"],
)
def test_bad_pairs_rejected(pairs, corrupt, expected):
    with pytest.raises(GateError) as err:
        check_pairs(corrupt(pairs), BOUNDS, name="deviate")
    message = str(err.value)
    assert message.startswith("data gate 'deviate' failed")
    for text in expected:
        assert text in message


def test_weight_floor(pairs):
    """With deviate's minimum weight the mean may exceed 1, but no weight may fall below the floor."""
    floored = pairs.assign(w_rejected_both=pairs["w_rejected_both"].clip(lower=0.75))
    check_pairs(floored, BOUNDS, min_weight=0.75)
    with pytest.raises(GateError, match="w_both_mean_minus_1"):
        check_pairs(floored, BOUNDS)  # without the floor the mean must be 1
    with pytest.raises(GateError, match="w_chosen_both=0.75"):
        check_pairs(floored, BOUNDS, min_weight=0.8)


def test_unpaired_weight_column(pairs):
    with pytest.raises(GateError, match=r"expect_column_to_exist\(column='w_rejected_both'\)"):
        check_pairs(pairs.drop(columns="w_rejected_both"), BOUNDS)


def test_data_docs(responses, tmp_path):
    docs = tmp_path / "docs"
    check_responses(responses, BOUNDS, docs_dir=docs)
    assert (docs / "index.html").exists()
    pages = {p.name for p in (docs / "validations").rglob("*.html")}
    assert len(pages) == 2  # the responses table and the per-prompt table
