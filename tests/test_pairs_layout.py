"""The pairs layout (`data.layout: pairs`, `divwrite.data.pairs`): judged pairs read and checked,
ingested into each prompt's distinct responses and the given pairs, passed through the filter and
the given-pairs gate, weighted, counted on the dataset card; bad input named by file, line and
field; the scores-to-pairs converter."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from divwrite.core.params import ParamsError, parse_section
from divwrite.core.records import GIVEN_PAIR_COLUMNS, PAIR_COLUMNS, RESPONSE_COLUMNS, prompt_id
from divwrite.core.schema import DataParams, GatesParams
from divwrite.data.card import card_markdown, dataset_card, with_given_pairs
from divwrite.data.given_pairs import given_pair_stats, given_share, through_filter
from divwrite.data.ingest import ingest
from divwrite.data.pairs import empty_given_pairs, ingest_pairs, pairs_to_tables, win_shares
from divwrite.data.pairs_convert import pairs_from_scores, write_jsonl
from divwrite.data.sources import load_records, source_stats

# A user's pairwise file with its own column names, mapped by data.columns.
NAMES = {"prompt": "instruction", "chosen": "winner", "rejected": "loser", "margin": "votes"}
A, B, C, D = "Story A, the best.", "Story B.", "Story C, the worst.", "Story D."


def row(prompt: str, chosen: str, rejected: str, margin: float | None = 1.0) -> dict:
    out = {"instruction": prompt, "winner": chosen, "loser": rejected}
    return out if margin is None else {**out, "votes": margin}


ROWS = [
    row("[WP] Dragons", A, B, 3.0),
    row("[WP] Dragons", B, C, 1.0),
    row("[WP] Dragons", A, C, 5.0),
    row("Robots", D, A, 0.5),
    row("[WP] Dragons", C, B, 0.0),  # raters disagree with row 2: kept as given
    row("[WP] Dragons", A, B, 2.0),  # row 1 again: kept as given
]


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def load_pairs(path: Path, columns: dict | None = None) -> list[dict]:
    return load_records(str(path), layout="pairs", columns=NAMES if columns is None else columns)[0]


# --------------------------------------------------------------------------- params and reading


def test_the_layout_and_its_columns_are_checked_in_the_schema() -> None:
    spec = parse_section(DataParams, {"source": "x.jsonl", "layout": "pairs", "columns": NAMES}, label="data")
    assert spec.columns.of_layout("pairs") == NAMES
    # the per_prompt fields may reuse the pairs layout's default names: only the layout read is checked
    ok = parse_section(DataParams, {"source": "x.csv", "columns": {"post_title": "prompt"}}, label="data")
    assert ok.columns.of_layout("per_prompt")["post_title"] == "prompt"
    with pytest.raises(ParamsError, match=r"several fields map to the same source column\(s\) \['w'\]"):
        parse_section(
            DataParams, {"source": "x", "layout": "pairs", "columns": {"chosen": "w", "rejected": "w"}}, "data"
        )
    with pytest.raises(ParamsError, match=r"layout 'pairs' reads judged pairs from a file or hf:<id>"):
        parse_section(DataParams, {"source": "builtin", "layout": "pairs"}, "data")


def test_jsonl_csv_and_parquet_pairs_read_alike(tmp_path: Path) -> None:
    pairs = load_pairs(write_rows(tmp_path / "p.jsonl", ROWS))
    assert pairs[0] == {"prompt": "[WP] Dragons", "chosen": A, "rejected": B, "margin": 3.0}
    with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(NAMES.values()))
        writer.writeheader()
        writer.writerows(ROWS)
    assert load_pairs(tmp_path / "p.csv") == pairs  # CSV margins are text, parsed as numbers
    pd.DataFrame(ROWS).to_parquet(tmp_path / "p.parquet")
    assert load_pairs(tmp_path / "p.parquet") == pairs
    no_margin = load_pairs(tmp_path / "p.jsonl", {k: v for k, v in NAMES.items() if k != "margin"})
    assert [p["margin"] for p in no_margin] == [None] * len(ROWS)
    stats = source_stats(pairs)
    assert stats == {"records": 6, "prompts": 2, "responses": 5, "duplicate_pairs": 1, "reversed_pairs": 2,
                     "pairs_with_margin": 6}  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"winner": A, "loser": B}, r"line 2: missing field 'instruction' \(mapped to prompt; fields present"),
        (row("P", "  \n", B), r"line 2: field 'winner' \(mapped to chosen\) is empty"),
        (row("P", A, ""), r"line 2: field 'loser' \(mapped to rejected\) is empty"),
        (row(" ", A, B), r"line 2: field 'instruction' \(mapped to prompt\) is empty"),
        (row("P", A, A), r"line 2: fields 'winner' \(mapped to chosen\) and 'loser' \(mapped to rejected\) hold "
                         r"the same text"),
        (row("P", None, B), r"line 2: field 'winner' \(mapped to chosen\) must be a string, got NoneType"),
        (row("P", A, 7), r"line 2: field 'loser' \(mapped to rejected\) must be a string, got int"),
        (row("P", A, B, "3"), r"line 2: field 'votes' \(mapped to margin\) must be a finite number, got '3'"),
        (row("P", A, B, -1.0), r"line 2: field 'votes' \(mapped to margin\) must be >= 0"),
        ('{"instruction": "P", "winner": "a", "loser": "b", "votes": NaN}', r"line 2: field 'votes' .* finite"),
        ("[1, 2]", r"line 2: expected a mapping with fields \['instruction', 'winner', 'loser', 'votes'\]"),
    ],
)  # fmt: skip
def test_bad_pairs_name_the_line_and_field(tmp_path: Path, bad, message: str) -> None:
    path = write_rows(tmp_path / "bad.jsonl", [ROWS[0], bad])
    with pytest.raises(ValueError, match=rf"bad.jsonl, {message}"):
        load_pairs(path)


def test_bad_csv_margin_and_empty_source(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("instruction,winner,loser,votes\nP,a,b,1\nP,a,c,lots\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.csv, line 3: field 'votes' \(mapped to margin\) must be a finite"):
        load_pairs(tmp_path / "bad.csv")
    (tmp_path / "header.csv").write_text("instruction,winner,loser,votes\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"header.csv: no records$"):
        load_pairs(tmp_path / "header.csv")


# --------------------------------------------------------------------------- ingest


def test_responses_are_each_prompts_distinct_texts_with_win_shares(tmp_path: Path) -> None:
    responses, given = pairs_to_tables(load_pairs(write_rows(tmp_path / "p.jsonl", ROWS)))
    dragons, robots = prompt_id("[WP] Dragons", ""), prompt_id("Robots", "")
    assert list(responses.columns) == RESPONSE_COLUMNS and list(given.columns) == GIVEN_PAIR_COLUMNS
    d = responses[responses["prompt_id"] == dragons].set_index("response")
    assert d["response_id"].to_dict() == {A: f"{dragons}-0", B: f"{dragons}-1", C: f"{dragons}-2"}  # first seen
    assert (d["prompt"] == "Dragons\n").all()  # the tag stripped, as build_prompt(title, "") does
    # A: 3 wins of 3; B: 1 win (row 5) of 4; C: 1 win of 3 -> (wins + 1) / (comparisons + 2)
    assert d["upvotes"].to_dict() == {A: 4 / 5, B: 2 / 6, C: 2 / 5}
    np.testing.assert_allclose(d["score"], 2 * d["upvotes"] - 1)
    r = responses[responses["prompt_id"] == robots].set_index("response")["upvotes"].to_dict()
    assert r == {D: 2 / 3, A: 1 / 3}  # the same text under another prompt is another response
    # every row, as given, in source order per prompt; the sides' derived numbers beside them
    g = given[given["prompt_id"] == dragons]
    assert g["pair_index"].tolist() == [0, 1, 2, 3, 4] and g["pair_id"].iloc[4] == f"{dragons}-p4"
    assert list(zip(g["chosen"], g["rejected"])) == [(A, B), (B, C), (A, C), (C, B), (A, B)]
    assert g["margin"].tolist() == [3.0, 1.0, 5.0, 0.0, 2.0]
    assert g["chosen_upvotes"].iloc[3] > g["rejected_upvotes"].iloc[3]  # C (2/5) over B (2/6): derived agrees
    assert (given["chosen_score"] == 2 * given["chosen_upvotes"] - 1).all()
    assert win_shares([], [], 2).tolist() == [0.5, 0.5]


def test_ids_are_stable_when_rows_are_appended(tmp_path: Path) -> None:
    before, _ = pairs_to_tables(load_pairs(write_rows(tmp_path / "a.jsonl", ROWS)))
    more = [*ROWS, row("[WP] Dragons", "Story E.", A), row("New prompt", A, B)]
    after, _ = pairs_to_tables(load_pairs(write_rows(tmp_path / "b.jsonl", more)))
    ids = dict(zip(before["response"] + before["prompt_id"], before["response_id"]))
    assert ids.items() <= dict(zip(after["response"] + after["prompt_id"], after["response_id"])).items()


def test_split_by_prompt_as_the_score_layouts_split() -> None:
    """Bodyless posts as pairs get the per_prompt layout's prompt ids, texts and split sides."""
    titles = [f"[WP] Prompt {i}" for i in range(40)]
    pairs = [{"prompt": t, "chosen": f"{t} good", "rejected": f"{t} bad", "margin": None} for t in titles]
    train, test, given = ingest_pairs(pairs, test_fraction=0.25, seed=7)
    scored = [{"post_title": t, "post_text": "", "comment_texts": [f"{t} good", f"{t} bad"],
               "comment_scores": [2, 1]} for t in titles]  # fmt: skip
    s_train, s_test = ingest(scored, test_fraction=0.25, transform_iterations=100, seed=7)
    for ours, theirs in ((train, s_train), (test, s_test)):
        assert ours[["prompt_id", "prompt", "response_id", "response"]].equals(
            theirs[["prompt_id", "prompt", "response_id", "response"]]
        )
    assert set(given["train"]["prompt_id"]) == set(train["prompt_id"]) and len(given["train"]) == len(train) // 2
    assert set(given["test"]["prompt_id"]) == set(test["prompt_id"]) and len(test) > 0
    assert given["test"]["margin"].isna().all()


def test_empty_given_pairs_has_the_schema() -> None:
    empty = empty_given_pairs()
    assert list(empty.columns) == GIVEN_PAIR_COLUMNS and empty.empty
    assert empty["pair_index"].dtype == np.int64 and empty["margin"].dtype == np.float64
    assert given_pair_stats(empty)["pairs"] == 0


# --------------------------------------------------------------------------- pair, gate, deviate, divpo, card


@pytest.fixture
def tables(tmp_path: Path):
    return pairs_to_tables(load_pairs(write_rows(tmp_path / "p.jsonl", ROWS)))


def test_through_filter_keeps_the_pairs_whose_two_sides_survived(tables) -> None:
    responses, given = tables
    kept_responses = responses[responses["response"] != C]  # the filter removed story C of Dragons ...
    kept_responses = kept_responses[~((kept_responses["response"] == A) & (kept_responses["prompt"] == "Robots\n"))]
    kept, counts = through_filter(given, kept_responses)  # ... and story A of Robots
    assert counts == {"given": 6, "chosen_removed": 1, "rejected_removed": 3, "both_removed": 0, "kept": 2}
    assert list(zip(kept["chosen"], kept["rejected"])) == [(A, B), (A, B)]
    assert kept["margin"].tolist() == [3.0, 2.0]
    stats = given_pair_stats(kept)
    assert stats["pairs"] == 2 and stats["responses_in_pairs"] == 2 and stats["margin_mean"] == 2.5


def test_the_given_pairs_gate(tables) -> None:
    """A response in several pairs and a derived order that disagrees with a pair are what given
    pairs are: the given gate passes them, the drawn-pairs gate would not; the same text twice or
    an empty side still stop it."""
    from divwrite.core.params import load_params
    from divwrite.core.stage import GateError
    from divwrite.data.gates import check_pairs

    _, given = tables
    gates = load_params(Path(__file__).resolve().parents[1] / "params.yaml").gates
    gates = GatesParams(**{**gates.model_dump(), "min_pairs_per_prompt": 1})
    summary = check_pairs(given, gates, name="pair", given=True)
    assert summary["success"] and "pair_responses" not in summary["tables"]
    assert summary["expectations"]["pairs/expect_column_values_to_be_in_set/same_text"]["success"]
    with pytest.raises(GateError, match="each response in at most one pair"):
        check_pairs(given, gates, name="pair")
    bad = given.copy()
    bad.loc[0, "rejected"] = bad.loc[0, "chosen"]
    bad.loc[1, "chosen"] = " "
    with pytest.raises(GateError, match=r"(?s)same_text.*1 of 6 rows.*empty_text.*1 of 6 rows"):
        check_pairs(bad, gates, name="pair", given=True)


def test_deviation_weights_over_each_prompts_distinct_responses(tables) -> None:
    from divwrite.weighting.deviation import weight_pairs
    from divwrite.weighting.embedders import load_embedder

    _, given = tables
    style = load_embedder("stylometric")
    weighted = weight_pairs(given[PAIR_COLUMNS], {"sem": style, "sty": style})
    assert len(weighted) == len(given)  # every given pair, no cap
    for side in ("chosen", "rejected"):  # a response has one weight, in every pair it is in
        assert (weighted.groupby(f"{side}_id")[f"w_{side}_both"].nunique() == 1).all()
    long = pd.concat(
        [weighted[["prompt_id", f"{s}_id", f"w_{s}_both", f"w_{s}_qg"]].set_axis(["pid", "id", "w", "qg"], axis=1)
         for s in ("chosen", "rejected")]
    ).drop_duplicates(["pid", "id"])  # fmt: skip
    assert long.groupby("pid")[["w", "qg"]].mean().sub(1).abs().to_numpy().max() < 1e-9  # mean 1 over R


def test_divpo_pairs_counted_against_the_given_ones(tables) -> None:
    _, given = tables
    flipped = given.iloc[[3]].rename(columns={"chosen_id": "rejected_id", "rejected_id": "chosen_id"})
    made = pd.concat([given.iloc[[0, 2]], flipped, given.iloc[[0]].assign(rejected_id="nobody")])
    assert given_share(made, given) == {"given": 3, "reversed": 0, "unjudged": 1}  # B-C given both ways
    one_way = given.iloc[[0]].rename(columns={"chosen_id": "rejected_id", "rejected_id": "chosen_id"})
    assert given_share(one_way, given.iloc[[0]]) == {"given": 0, "reversed": 1, "unjudged": 0}


def test_the_dataset_card_counts_given_pairs(tables) -> None:
    responses, given = tables
    splits = {"train": responses, "test": responses.iloc[:0]}
    pairs = {"train": given, "test": given.iloc[:0]}
    kept = {"train": responses[responses["response"] != C], "test": responses.iloc[:0]}
    plain = {"ingested": dataset_card(splits), "filtered": dataset_card(kept)}
    card = with_given_pairs(plain, pairs, kept)
    assert "given_pairs" not in plain["ingested"]["train"]  # the score layouts' card is untouched
    assert card["ingested"]["train"]["given_pairs"] == {
        "pairs": 6, "prompts": 2, "pairs_per_prompt": {"min": 1, "median": 3.0, "mean": 3.0, "max": 5},
        "responses_per_pair": 1.2,
    }  # fmt: skip
    assert card["filtered"]["train"]["given_pairs"]["pairs"] == 3  # A-B twice, D-A
    assert card["filtered"]["test"]["given_pairs"]["pairs"] == 0
    md = card_markdown(card, "Card")
    assert "| given pairs | 6 | 0 | 3 | 0 |" in md
    assert "given pairs" not in card_markdown(plain, "Card")


# --------------------------------------------------------------------------- converter


def test_pairs_from_scores(tmp_path: Path) -> None:
    records = [
        {"post_title": "[WP] T", "post_text": "", "comment_texts": ["x", "y", "z", "x", " "],
         "comment_scores": [2.0, 3.5, 2.0, 9.0, 5.0]},
        {"post_title": "U", "post_text": "body", "comment_texts": ["p", "q"], "comment_scores": [1, 1]},
    ]  # fmt: skip
    rows = pairs_from_scores(records, names={"chosen": "better"})
    # x-y (y better), x-z tie skipped, y-z; the repeated "x" and the blank text skipped; U all tied
    assert rows == [
        {"prompt": "[WP] T", "better": "y", "rejected": "x", "margin": 1.5},
        {"prompt": "[WP] T", "better": "y", "rejected": "z", "margin": 1.5},
    ]
    many = [{"post_title": "V", "post_text": "b", "comment_texts": [str(i) for i in range(6)],
             "comment_scores": list(range(6))}]  # fmt: skip
    some = pairs_from_scores(many, max_pairs_per_prompt=4, seed=1)
    assert len(some) == 4 and some == pairs_from_scores(many, max_pairs_per_prompt=4, seed=1)
    assert {r["prompt"] for r in some} == {"V\nb"} and all(int(r["chosen"]) > int(r["rejected"]) for r in some)
    with pytest.raises(ValueError, match="unknown pair fields"):
        pairs_from_scores(many, names={"winner": "w"})
    path = write_jsonl(rows, tmp_path / "out.jsonl")
    assert load_records(str(path), layout="pairs", columns={"chosen": "better"})[0][0]["chosen"] == "y"
