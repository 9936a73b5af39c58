"""Filter (METHOD.md step 2): moderation, deleted, empty, too long, too few responses, and
what each rule removed (share, mean score of removed vs kept)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from divwrite.core.records import RESPONSE_COLUMNS
from divwrite.data.filtering import (
    filter_responses,
    is_deleted,
    is_empty,
    is_moderation,
    removal_reasons,
    removal_stats,
    score_shift,
)

WELCOME = "**Welcome to the Prompt!** All top-level comments must be a story or poem."
REMOVED = "Hello, u/someone! This submission has been removed because it breaks rule 2."
OFF_TOPIC = "**Off-Topic Discussion**: reply here for anything that is not a story."


def table(rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Responses table from (prompt_id, response) rows."""
    return pd.DataFrame(
        {
            "prompt_id": [p for p, _ in rows],
            "prompt": [f"prompt {p}\n" for p, _ in rows],
            "response_id": [f"{p}-{i}" for i, (p, _) in enumerate(rows)],
            "response": [r for _, r in rows],
            "upvotes": np.arange(len(rows), dtype=float),
            "score": np.linspace(-1, 1, len(rows)),
        }
    )[RESPONSE_COLUMNS]


def test_predicates() -> None:
    assert is_moderation(WELCOME) and is_moderation(REMOVED) and is_moderation(OFF_TOPIC)
    assert is_moderation("THIS SUBMISSION HAS BEEN REMOVED")  # the sentence in any case
    assert not is_moderation("Welcome to the prompt! said the dragon.")  # no bold markers
    assert not is_moderation("The submission was removed from the archive.")
    assert is_deleted("[deleted]") and is_deleted(" [removed]\n") and is_deleted("[Deleted]")
    assert not is_deleted("He [deleted] the file.")
    assert is_empty("") and is_empty("  \n\t") and is_empty(None) and is_empty(float("nan"))
    assert not is_empty(".")


def test_filter_counts_each_rule_and_keeps_order() -> None:
    df = table(
        [
            ("a", "A story about a lighthouse."),  # kept
            ("a", WELCOME),  # moderation
            ("a", "[deleted]"),  # deleted
            ("a", "   "),  # empty
            ("a", "Another story, far too long."),  # too_long
            ("a", "A third story."),  # kept
            ("b", "B's only real story."),  # too_few_responses (its sibling is removed)
            ("b", REMOVED),  # moderation
            ("c", "C one."),  # kept
            ("c", "C two."),  # kept
            ("c", "[removed]"),  # deleted
        ]
    )
    lengths = np.array([50, 10, 3, 2, 900, 100, 40, 30, 20, 20, 3])
    kept, counts = filter_responses(df, token_lengths=lengths, max_tokens=384, min_responses=2)
    assert counts == {
        "input": 11,
        "moderation": 2,
        "deleted": 2,
        "empty": 1,
        "duplicate": 0,
        "too_long": 1,
        "too_few_responses": 1,
        "output": 4,
    }
    assert kept["response"].tolist() == ["A story about a lighthouse.", "A third story.", "C one.", "C two."]
    assert list(kept.columns) == RESPONSE_COLUMNS
    assert kept.index.tolist() == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(kept, df.iloc[[0, 5, 8, 9]].reset_index(drop=True))


def test_first_rule_wins_and_length_boundary() -> None:
    df = table([("a", WELCOME), ("a", "[deleted]"), ("a", "ok one"), ("a", "ok two")])
    # every row is too long or at the limit; the first two count under their earlier rule
    reasons = removal_reasons(df, token_lengths=np.array([999, 999, 384, 385]), max_tokens=384)
    assert reasons.tolist() == ["moderation", "deleted", "too_few_responses", "too_long"]
    # 384 tokens is within the limit; alone, its prompt is then too small
    _, counts = filter_responses(df, token_lengths=np.array([999, 999, 384, 385]), max_tokens=384)
    assert counts["too_long"] == 1 and counts["too_few_responses"] == 1 and counts["output"] == 0


def test_without_token_lengths_and_min_responses() -> None:
    df = table([("a", "one"), ("a", "two"), ("a", "three"), ("b", "x"), ("b", "y")])
    kept, counts = filter_responses(df, token_lengths=None, max_tokens=1, min_responses=3)
    assert kept["response"].tolist() == ["one", "two", "three"]
    assert counts["too_long"] == 0 and counts["too_few_responses"] == 2
    kept, counts = filter_responses(df, token_lengths=None, max_tokens=1, min_responses=1)
    assert counts["output"] == 5


def test_token_lengths_must_align() -> None:
    df = table([("a", "one"), ("a", "two")])
    with pytest.raises(ValueError, match=r"token_lengths has shape \(3,\), expected \(2,\)"):
        filter_responses(df, token_lengths=np.array([1, 2, 3]), max_tokens=10)


def test_duplicates_dropped_only_when_asked() -> None:
    """A repeated text under the same prompt is a crawl artefact (off by default, as in the paper)."""
    df = table([("a", "Same story."), ("a", " Same story.\n"), ("a", "Other."), ("b", "Same story."), ("b", "B.")])
    _, counts = filter_responses(df, token_lengths=None, max_tokens=10)
    assert counts["duplicate"] == 0 and counts["output"] == 5
    kept, counts = filter_responses(df, token_lengths=None, max_tokens=10, drop_duplicates=True)
    # the first copy stays; the same text under another prompt is not a duplicate
    assert counts["duplicate"] == 1 and kept["response_id"].tolist() == ["a-0", "a-2", "b-3", "b-4"]


def test_absurdly_long_response_goes_by_token_count(tmp_path) -> None:
    """Ingest keeps a 200,000-word response; filter removes it with the real tokenizer's count."""
    from divwrite.training.tokenizer import chat_token_lengths, train_bpe_tokenizer

    df = table([("a", "A short story."), ("a", "word " * 200_000), ("a", "Another one.")])
    tokenizer = train_bpe_tokenizer(
        ["A short story about words.", "Another one."] * 20, vocab_size=300, out_dir=tmp_path
    )
    lengths = chat_token_lengths(tokenizer, df["prompt"].tolist(), df["response"].tolist())
    assert lengths[1] > 200_000 > 384 > lengths[0]
    kept, counts = filter_responses(df, token_lengths=lengths, max_tokens=384)
    assert counts["too_long"] == 1 and kept["response_id"].tolist() == ["a-0", "a-2"]


def test_removal_stats_per_rule_are_exact() -> None:
    """Hand-computed: kept scores 0, 0.2, -0.2, 0.6 (mean 0.15), upvotes 1, 3, 2, 6 (mean 3)."""
    df = table([("a", "s1"), ("a", "s2"), ("a", WELCOME), ("a", "[deleted]"), ("a", "long"), ("b", "t1"), ("b", "t2")])
    df["score"] = [0.0, 0.2, -1.0, 0.4, 0.8, -0.2, 0.6]
    df["upvotes"] = [1.0, 3.0, 0.0, 5.0, 9.0, 2.0, 6.0]
    reasons = removal_reasons(df, token_lengths=np.array([5, 5, 5, 5, 50, 5, 5]), max_tokens=10)
    stats = removal_stats(df, reasons)
    assert stats["input"] == 7
    assert stats["kept"] == {"responses": 4, "mean_score": 0.15, "mean_upvotes": 3.0}
    few = {"score_gap": None, "score_gap_se": None, "removed_score_higher": False}  # < 5 removed: no comparison
    assert stats["removed"]["moderation"] == {
        "responses": 1, "share": 0.142857, "mean_score": -1.0, "mean_upvotes": 0.0, **few
    }  # fmt: skip
    assert stats["removed"]["too_long"] == {
        "responses": 1,
        "share": 0.142857,
        "mean_score": 0.8,
        "mean_upvotes": 9.0,
        **few,
    }
    assert stats["removed"]["all"] == {
        "responses": 3, "share": 0.428571, "mean_score": 0.066667, "mean_upvotes": 4.666667, **few
    }  # fmt: skip
    for rule in ("empty", "duplicate", "too_few_responses"):  # every rule is reported, also when it removed nothing
        assert stats["removed"][rule] == {"responses": 0, "share": 0.0, "mean_score": None, "mean_upvotes": None, **few}
    assert set(stats["removed"]) == {
        "moderation",
        "deleted",
        "empty",
        "duplicate",
        "too_long",
        "too_few_responses",
        "all",
    }


def test_score_shift_needs_5_removed_and_2_standard_errors() -> None:
    """removed 0.5..0.7 (mean 0.6, variance 0.00625), kept 0..0.6 (mean 0.3, variance 1/15):
    standard error sqrt(0.00625 / 5 + (1/15) / 4) = 0.133853, so a gap of 0.3 > 2 x 0.133853
    is "higher" and a gap of 0.26 is not."""
    removed, kept = np.array([0.5, 0.55, 0.6, 0.65, 0.7]), np.array([0.0, 0.2, 0.4, 0.6])
    assert score_shift(removed, kept) == {"score_gap": 0.3, "score_gap_se": 0.133853, "removed_score_higher": True}
    assert score_shift(removed - 0.04, kept)["removed_score_higher"] is False
    assert score_shift(removed[:4] + 10, kept) == {
        "score_gap": None,
        "score_gap_se": None,
        "removed_score_higher": False,
    }
    assert score_shift(kept, removed)["removed_score_higher"] is False  # lower is not a shift upwards
    same = score_shift(np.full(5, 0.5), np.full(9, 0.5))  # no spread: any gap > 0 would count, none here
    assert same == {"score_gap": 0.0, "score_gap_se": 0.0, "removed_score_higher": False}
    assert score_shift(np.full(5, 0.6), np.full(9, 0.5))["removed_score_higher"] is True
