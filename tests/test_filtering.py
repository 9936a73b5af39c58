"""Filter (METHOD.md step 2): moderation, deleted, empty, too long, too few responses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from divwrite.core.records import RESPONSE_COLUMNS
from divwrite.data.filtering import filter_responses, is_deleted, is_empty, is_moderation, removal_reasons

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
