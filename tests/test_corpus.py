"""The built-in corpus: determinism, schema, the designed structure, junk, detectors."""

from __future__ import annotations

import math
import re
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from divwrite.core.records import prompt_id, response_id
from divwrite.data.corpus import grammar
from divwrite.data.corpus.detectors import QUALITY_PENALTY, detect_archetype, detect_style, on_topic, true_quality
from divwrite.data.corpus.generator import (
    ARCHETYPE_POPULARITY,
    JUNK_KINDS,
    QUALITY_NOISE_SD,
    STYLE_POPULARITY,
    Corpus,
    generate_corpus,
)
from divwrite.data.corpus.grammar import ARCHETYPE_QUALITY, ARCHETYPES, STYLE_QUALITY, STYLES

BOT_MARKERS = ("**Welcome to the Prompt!**", "**Off-Topic Discussion**", "this submission has been removed")
UNRELATED = (
    "",
    "   \n",
    "[deleted]",
    "Buy two get one free on all garden furniture this weekend only.",
    "import numpy as np; x = np.zeros(3)",
    "Quarterly revenue grew four percent across European markets despite weaker currency.",
)


def _long(c: Corpus) -> pd.DataFrame:
    """truth_responses with the comment text and upvotes alongside."""
    texts = [t for r in c.records for t in r["comment_texts"]]
    scores = [s for r in c.records for s in r["comment_scores"]]
    return c.truth_responses.assign(text=texts, upvotes=scores)


@pytest.fixture(scope="module")
def big() -> Corpus:
    return generate_corpus(200, seed=11)


@pytest.fixture(scope="module")
def big_long(big: Corpus) -> pd.DataFrame:
    return _long(big)


@pytest.fixture(scope="module")
def stories(big_long: pd.DataFrame) -> pd.DataFrame:
    return big_long[big_long["junk"] == ""]


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = generate_corpus(25, seed=5)
    b = generate_corpus(25, seed=5)
    assert a.records == b.records
    pd.testing.assert_frame_equal(a.truth_responses, b.truth_responses)
    pd.testing.assert_frame_equal(a.truth_prompts, b.truth_prompts)
    c = generate_corpus(25, seed=6)
    assert c.records != a.records


def test_record_schema_and_truth_alignment():
    c = generate_corpus(30, seed=2)
    assert isinstance(c, Corpus) and len(c.records) == 30
    for rec in c.records:
        assert set(rec) == {"post_title", "post_text", "comment_texts", "comment_scores"}
        assert isinstance(rec["post_title"], str) and rec["post_title"].startswith("[WP] ")
        assert isinstance(rec["post_text"], str)
        assert isinstance(rec["comment_texts"], list) and all(isinstance(t, str) for t in rec["comment_texts"])
        assert isinstance(rec["comment_scores"], list)
        assert all(type(s) is int and s >= 0 for s in rec["comment_scores"])
        assert len(rec["comment_texts"]) == len(rec["comment_scores"]) >= 2

    truth = c.truth_responses
    assert list(truth.columns) == [
        "prompt_id", "response_index", "response_id", "archetype", "style", "latent_quality", "junk"
    ]  # fmt: skip
    assert list(c.truth_prompts.columns) == ["prompt_id", "elements"]
    expected = [
        (prompt_id(r["post_title"], r["post_text"]), i) for r in c.records for i in range(len(r["comment_texts"]))
    ]
    assert list(zip(truth["prompt_id"], truth["response_index"])) == expected
    assert list(truth["response_id"]) == [response_id(p, i) for p, i in expected]
    pids = [prompt_id(r["post_title"], r["post_text"]) for r in c.records]
    assert list(c.truth_prompts["prompt_id"]) == pids and len(set(pids)) == len(pids)
    for els in c.truth_prompts["elements"]:
        assert isinstance(els, list) and len(els) == 3 and all(isinstance(e, str) and e for e in els)
    assert truth["latent_quality"].dtype == np.float64
    junk = truth["junk"] != ""
    assert truth.loc[junk, "latent_quality"].isna().all()
    assert truth.loc[~junk, "latent_quality"].notna().all()
    assert set(truth["junk"]) <= {"", *JUNK_KINDS}
    assert set(truth.loc[~junk, "archetype"]) <= set(ARCHETYPES)
    assert set(truth.loc[~junk, "style"]) <= set(STYLES)


def test_truth_tables_are_well_formed():
    assert set(ARCHETYPE_POPULARITY) == set(ARCHETYPE_QUALITY) == set(ARCHETYPES) and len(ARCHETYPES) == 6
    assert set(STYLE_POPULARITY) == set(STYLE_QUALITY) == set(STYLES) and len(STYLES) == 5
    assert math.isclose(sum(ARCHETYPE_POPULARITY.values()), 1.0)
    assert math.isclose(sum(STYLE_POPULARITY.values()), 1.0)
    # Skewed popularity; quality concentrates where writers crowd: the most common archetype
    # and style are the best (training toward quality narrows the output, premise P5) ...
    common_a = max(ARCHETYPES, key=ARCHETYPE_POPULARITY.get)
    common_s = max(STYLES, key=STYLE_POPULARITY.get)
    assert ARCHETYPE_POPULARITY[common_a] >= 0.35 and ARCHETYPE_QUALITY[common_a] == max(ARCHETYPE_QUALITY.values())
    assert STYLE_QUALITY[common_s] == max(STYLE_QUALITY.values())
    # ... several rare ones (<= 15 %) come close, none better (no rare runaway best, findings.md) ...
    rare_good = [a for a in ARCHETYPES if ARCHETYPE_POPULARITY[a] <= 0.15 and ARCHETYPE_QUALITY[a] >= 0.3]
    assert len(rare_good) >= 2
    assert any(STYLE_POPULARITY[s] <= 0.15 and STYLE_QUALITY[s] >= 0.2 for s in STYLES)
    # ... and rarity alone is not rewarded: a rare choice on each axis is the worst.
    assert min(ARCHETYPE_QUALITY, key=ARCHETYPE_QUALITY.get) in [
        a for a in ARCHETYPES if ARCHETYPE_POPULARITY[a] <= 0.15
    ]
    assert min(STYLE_QUALITY, key=STYLE_QUALITY.get) in [s for s in STYLES if STYLE_POPULARITY[s] <= 0.15]


def test_popularity_skew_and_quality_structure_hold(stories: pd.DataFrame):
    shares = stories["archetype"].value_counts(normalize=True)
    for a in ARCHETYPES:
        assert abs(shares.get(a, 0.0) - ARCHETYPE_POPULARITY[a]) < 0.04, (a, shares.get(a))
    shares = stories["style"].value_counts(normalize=True)
    for s in STYLES:
        assert abs(shares.get(s, 0.0) - STYLE_POPULARITY[s]) < 0.04, (s, shares.get(s))
    # latent quality = archetype effect + style effect + noise (sd: generate_corpus's default)
    expected = stories["archetype"].map(ARCHETYPE_QUALITY) + stories["style"].map(STYLE_QUALITY)
    resid = stories["latent_quality"] - expected
    assert abs(resid.mean()) < 0.05 and 0.8 * QUALITY_NOISE_SD < resid.std() < 1.2 * QUALITY_NOISE_SD
    # upvotes follow quality: the best archetype / style out-earn the worst and the mediocre popular one
    for column, table in (("archetype", ARCHETYPE_QUALITY), ("style", STYLE_QUALITY)):
        means = stories.groupby(column)["upvotes"].mean()
        best, worst = max(table, key=table.get), min(table, key=table.get)
        mediocre_popular = sorted(table, key=table.get)[1]  # romance / dialogue: 0.0
        assert means[best] > means[mediocre_popular] > means[worst], (column, means.to_dict())
    assert np.corrcoef(np.log1p(stories["upvotes"]), stories["latent_quality"])[0, 1] > 0.5


def test_upvotes_are_heavy_tailed_with_usable_gaps(stories: pd.DataFrame):
    up = stories["upvotes"].to_numpy()
    assert up.min() >= 0 and np.median(up) < up.mean()
    assert up.max() >= 100  # a few viral ones
    gaps = stories.groupby("prompt_id")["upvotes"].agg(lambda u: u.max() - u.min())
    assert (gaps >= 5).mean() > 0.6


def test_every_story_mentions_all_its_elements(big: Corpus, stories: pd.DataFrame):
    elements = dict(zip(big.truth_prompts["prompt_id"], big.truth_prompts["elements"]))
    titles = {prompt_id(r["post_title"], r["post_text"]): r["post_title"] for r in big.records}
    for pid, els in elements.items():
        assert on_topic(titles[pid], els)
    assert all(on_topic(t, elements[p]) for t, p in zip(stories["text"], stories["prompt_id"]))


def test_story_lengths(stories: pd.DataFrame):
    words = stories["text"].str.split().str.len()
    assert 50 <= words.mean() <= 80
    assert words.quantile(0.05) >= 35 and words.quantile(0.95) <= 100


def test_all_junk_kinds_appear_and_look_like_reddit(big_long: pd.DataFrame):
    junk = big_long[big_long["junk"] != ""]
    assert set(junk["junk"]) == set(JUNK_KINDS)
    share = len(junk) / len(big_long)
    assert 0.03 < share < 0.09
    for kind, text, _votes in zip(junk["junk"], junk["text"], junk["upvotes"]):
        if kind.startswith("bot_"):
            assert any(m in text for m in BOT_MARKERS)
        elif kind in ("deleted", "removed"):
            assert text == f"[{kind}]"
        elif kind in ("empty", "whitespace"):
            assert text.strip() == "" and (text == "") == (kind == "empty")
        else:
            assert len(text.split()) > 600
    bots = junk[junk["junk"].str.startswith("bot_")]
    assert (bots["upvotes"] == 1).mean() > 0.6
    assert not any(any(m in t for m in BOT_MARKERS) for t in big_long.loc[big_long["junk"] == "", "text"])


def test_responses_per_prompt(big_long: pd.DataFrame):
    per = big_long.groupby("prompt_id").size()
    real = big_long[big_long["junk"] == ""].groupby("prompt_id").size()
    assert len(real) == len(per) and real.min() >= 2
    assert per.min() >= 2 and per.median() < per.mean() and per.max() <= 60
    assert 9.0 < per.mean() < 13.0
    small = _long(generate_corpus(60, seed=1, mean_responses=4.4, max_responses=12, junk_rate=0.3))
    per = small.groupby("prompt_id").size()
    assert per.max() <= 12 and per.median() < per.mean()
    assert small[small["junk"] == ""].groupby("prompt_id").size().min() >= 2


def test_generate_corpus_rejects_bad_arguments():
    for kwargs in (
        {"n_prompts": 0},
        {"max_responses": 1},
        {"mean_responses": 1.5},
        {"mean_responses": 80.0},
        {"junk_rate": 1.0},
    ):
        with pytest.raises(ValueError):
            generate_corpus(**{"n_prompts": 5, "seed": 0, **kwargs})


def test_detectors_recover_the_truth(big: Corpus, stories: pd.DataFrame):
    arch = stories["text"].map(detect_archetype)
    style = stories["text"].map(detect_style)
    assert (arch == stories["archetype"]).mean() >= 0.97
    assert (style == stories["style"]).mean() >= 0.97
    elements = dict(zip(big.truth_prompts["prompt_id"], big.truth_prompts["elements"]))
    tq = np.array([true_quality(t, elements[p]) for t, p in zip(stories["text"], stories["prompt_id"])])
    noise_free = (stories["archetype"].map(ARCHETYPE_QUALITY) + stories["style"].map(STYLE_QUALITY)).to_numpy()
    assert np.isclose(tq, noise_free).mean() >= 0.97


def test_every_archetype_in_every_style():
    """The axes are independent: all 30 combinations are written and recognised."""
    rng = np.random.default_rng(0)
    for a in ARCHETYPES:
        for s in STYLES:
            for name in ("Mara", "Tobias"):
                text = grammar.write_story(rng, (name, "lighthouse", "umbrella"), a, s)
                assert detect_archetype(text) == a, text
                assert detect_style(text) == s, text
                assert on_topic(text, [name, "lighthouse", "umbrella"])


def test_detectors_say_none_on_unrelated_text(big_long: pd.DataFrame):
    for text in UNRELATED:
        assert detect_archetype(text) == "none", text
        assert detect_style(text) == "none", text
    bots = big_long.loc[big_long["junk"].str.startswith("bot_"), "text"]
    assert all(detect_archetype(t) == "none" and detect_style(t) == "none" for t in bots)
    # a tie between two lexicons is undecidable
    assert detect_archetype("the dragon and the vault") == "none"
    assert detect_archetype("the dragon, the map and the vault") == "quest"


def test_on_topic_matches_whole_words_case_insensitively():
    assert on_topic("MARA lit the Lantern in the bakery.", ["Mara", "lantern", "bakery"])
    assert not on_topic("Tamara lit the lanterns in the bakery.", ["Mara", "lantern", "bakery"])
    assert on_topic("anything", [])


def test_true_quality_hand_checked():
    els = ["Mara", "lighthouse", "umbrella"]
    text = (
        "Mara met a stranger at the lighthouse. She gave the stranger an umbrella as a tender "
        "token of love. She confessed her love, and the stranger kissed her. She married the "
        "stranger the next spring."
    )
    # lexicon hits: romance (tender, love x2, kissed, married), no other archetype; third
    # person (Mara + verb, she x4, her), past (met, gave, confessed, kissed, married), no
    # quotes, 9 words per sentence: classic.
    assert detect_archetype(text) == "romance"
    assert detect_style(text) == "classic"
    assert true_quality(text, els) == pytest.approx(ARCHETYPE_QUALITY["romance"] + STYLE_QUALITY["classic"])
    # the same story for a prompt whose object it ignores: one penalty
    assert true_quality(text, ["Mara", "lighthouse", "violin"]) == pytest.approx(
        ARCHETYPE_QUALITY["romance"] + STYLE_QUALITY["classic"] - QUALITY_PENALTY
    )
    # nothing recognisable and off-topic: three penalties
    assert true_quality("", els) == pytest.approx(-3 * QUALITY_PENALTY)
    assert max(ARCHETYPE_QUALITY.values()) - min(ARCHETYPE_QUALITY.values()) <= QUALITY_PENALTY


def test_grammar_invariants():
    """What makes the detectors and topicality sound, checked on the grammar itself."""
    lexicons = {a: grammar.GRAMMAR[a].lexicon for a in ARCHETYPES}
    for a, b in combinations(ARCHETYPES, 2):
        assert not lexicons[a] & lexicons[b], (a, b)
    every_lexicon_word = set().union(*lexicons.values())
    neutral = [*grammar.NAMES, *grammar.PLACES, *grammar.OBJECTS, *grammar._FRAGMENTS, *grammar._SIMILES]
    neutral += [c[0] + " " + c[2] for c in grammar._NAMING]
    for text in neutral:
        assert not set(re.findall(r"[a-z]+", text.lower())) & every_lexicon_word, text
    pools = [w.lower() for w in (*grammar.NAMES, *grammar.PLACES, *grammar.OBJECTS)]
    assert len(set(pools)) == len(pools)
    for a in ARCHETYPES:
        g = grammar.GRAMMAR[a]
        assert len(g.slots) == 5 and all(len(variants) >= 3 for variants in g.slots)
        texts = [" ".join(c) for slot in g.slots for beat in slot for c in beat] + [line for _, line in g.dialogue]
        for text in texts:
            words = set(re.findall(r"[a-z]+", text.lower()))
            for b in ARCHETYPES:
                if b != a:
                    assert not words & lexicons[b], (a, b, text)
        for beat in g.slots[0]:  # the opening's first clause names the place, in its core
            assert "{P}" in beat[0][2], (a, beat)
        for beat in g.slots[1]:  # the next beat's first clause uses the object, in its core
            assert "{O}" in beat[0][2] or "{a_O}" in beat[0][2], (a, beat)
        for beat in (b for slot in g.slots for b in slot):
            assert all(c[1] in grammar.VERBS for c in beat)
    profiles = [(s.person, s.tense, s.dialogue, s.rhythm) for s in grammar.STYLE_SPECS.values()]
    assert len(set(profiles)) == len(profiles) and set(grammar.STYLE_SPECS) == set(STYLES)
