"""The built-in corpus's generator: prompts, stories, junk comments and upvotes with known truth.

`generate_corpus` draws prompts (three elements rendered through a title template), the
number of comments per prompt, and per comment an archetype and a style (independently,
from the skewed popularity tables here), a latent quality and heavy-tailed upvotes driven
by it; some comments are junk (moderator bots, "[deleted]", empty, overlong). The stories
are written by the grammar (`grammar.write_story`). It returns a `Corpus`: the
r/WritingPrompts-shaped records and the truth tables behind them. The package docstring
(`divwrite.data.corpus`) has the design and its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from divwrite.core.records import prompt_id, response_id
from divwrite.data.corpus.grammar import (
    ARCHETYPE_QUALITY,
    ARCHETYPES,
    NAMES,
    NONE,
    OBJECTS,
    PLACES,
    STYLE_QUALITY,
    STYLES,
    article,
    write_story,
)

# --------------------------------------------------------------------------- popularity and noise

ARCHETYPE_POPULARITY: dict[str, float] = {
    "quest": 0.40,
    "romance": 0.25,
    "mystery": 0.13,
    "heist": 0.10,
    "revenge": 0.07,
    "homecoming": 0.05,
}
STYLE_POPULARITY: dict[str, float] = {
    "classic": 0.40,
    "dialogue": 0.25,
    "confessional": 0.17,
    "terse": 0.11,
    "lyrical": 0.07,
}
QUALITY_NOISE_SD = 0.6

# Upvotes: floor(exp(BASE + exposure + SLOPE * q + N(0, NOISE))), exposure ~ N(0, EXPOSURE_SD).
UPVOTE_BASE = 1.4
UPVOTE_SLOPE = 1.1
UPVOTE_NOISE_SD = 0.6
UPVOTE_EXPOSURE_SD = 0.5
# Comments per prompt: 2 + NegativeBinomial(n=RESPONSES_DISPERSION, mean=mean_responses - 2).
RESPONSES_DISPERSION = 1.0

JUNK_KINDS: tuple[str, ...] = (
    "bot_welcome",
    "bot_offtopic",
    "bot_removed",
    "deleted",
    "removed",
    "empty",
    "whitespace",
    "overlong",
)
_JUNK_WEIGHTS = (0.20, 0.10, 0.10, 0.20, 0.10, 0.08, 0.07, 0.15)
OVERLONG_MIN_WORDS = 600

# --------------------------------------------------------------------------- prompts

_TITLE_TEMPLATES: tuple[str, ...] = (
    "[WP] {N} finds {a_O} in the {P}, and it changes everything.",
    "[WP] Nobody has set foot in the {P} for decades. Then {N} arrives, carrying {a_O}.",
    "[WP] You are {N}. Every night you leave {a_O} at the door of the {P}. Tonight, someone answers.",
    "[WP] The {P} is closing forever, and {N} has one last chance to use the {O}.",
    "[WP] {N} inherits the {P} and a single {O}. The will says nothing else.",
    "[WP] Write a story about {N}, {a_O}, and the {P}.",
    "[WP] In the {P}, the {O} only works for {N}.",
)
_POST_TEXTS: tuple[str, ...] = (
    "Any genre is fine.",
    "First time posting a prompt here, go easy on me!",
    "Inspired by a dream I had last night.",
    "Bonus points for a twist ending.",
    "Keep it short if you can.",
)
_POST_TEXT_RATE = 0.25

# --------------------------------------------------------------------------- junk texts

_BOT_WELCOME = (
    "**Welcome to the Prompt!** All top-level comments must be a story or poem. Reply here for other "
    'comments.\n\n**Reminders**:\n\n>* Stories at least 100 words. Poems, 30 but include "[Poem]"\n>* '
    "Responses don't have to fulfill every detail\n>* See [Reality Fiction](https://www.reddit.com/r/"
    "WritingPrompts/wiki/reality_fiction) for stand-alone stories\n\n**What Is This?**\n\n[New Here?]"
    "(https://www.reddit.com/r/WritingPrompts/wiki/user_guide) | [Writing Help?](https://www.reddit.com/"
    "r/WritingPrompts/wiki/index#wiki_writing_resources) | [Discord Chatroom](https://discord.gg/"
    "writingprompts)\n\n*I am a bot, and this action was performed automatically. Please [contact the "
    "moderators of this subreddit](/message/compose/?to=/r/WritingPrompts) if you have any questions or "
    "concerns.*"
)
_BOT_OFFTOPIC = (
    "**Off-Topic Discussion**: All top-level comments must be a story or poem. Reply here for other "
    'comments.\n\n**Reminders**:\n\n>* Stories at least 100 words. Poems, 30 but include "[Poem]"\n>* '
    "See [Reality Fiction](https://www.reddit.com/r/WritingPrompts/wiki/reality_fiction) for stand-alone "
    "stories\n\n*I am a bot, and this action was performed automatically. Please [contact the moderators "
    "of this subreddit](/message/compose/?to=/r/WritingPrompts) if you have any questions or concerns.*"
)
_BOT_REMOVED = (
    "Hi u/{user}, this submission has been removed for the following reason(s):\n\n* {reason}\n\n"
    "[Click here to message the moderators if you have any questions or concerns.](https://www.reddit.com/"
    "message/compose?to=%2Fr%2FWritingPrompts)"
)
_REMOVAL_REASONS: tuple[str, ...] = (
    "Low-effort response. Top-level comments must be a story or poem of at least 100 words.",
    "No links to your own content as a top-level comment.",
    "Top-level comments must be a story or poem. Reply to the automoderator comment for other comments.",
)
_USER_PARTS: tuple[str, ...] = ("quill", "ink", "nightowl", "paper", "story", "moth", "fern", "tealeaf")
_WHITESPACE: tuple[str, ...] = (" ", "\n", "\n\n", " \n ", "\t")

# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Corpus:
    """A generated corpus: the WP-shaped records and the truth behind them."""

    records: list[dict]
    truth_responses: pd.DataFrame  # prompt_id, response_index, response_id, archetype, style, latent_quality, junk
    truth_prompts: pd.DataFrame  # prompt_id, elements


# --------------------------------------------------------------------------- stories, junk, prompts


def _write_overlong(rng: np.random.Generator, elements: tuple[str, str, str], archetype: str, style: str) -> str:
    """A story that rambles on past `OVERLONG_MIN_WORDS` words (paragraphs of retold beats)."""
    paragraphs: list[str] = []
    n_words = 0
    while n_words <= OVERLONG_MIN_WORDS:
        paragraph = write_story(rng, elements, archetype, style)
        paragraphs.append(paragraph)
        n_words += len(paragraph.split())
    return "\n\n".join(paragraphs)


def _junk_text(rng: np.random.Generator, kind: str, elements: tuple[str, str, str], archetype: str, style: str) -> str:
    if kind == "bot_welcome":
        return _BOT_WELCOME
    if kind == "bot_offtopic":
        return _BOT_OFFTOPIC
    if kind == "bot_removed":
        user = f"{_USER_PARTS[int(rng.integers(len(_USER_PARTS)))]}_{int(rng.integers(10, 9999))}"
        reason = _REMOVAL_REASONS[int(rng.integers(len(_REMOVAL_REASONS)))]
        return _BOT_REMOVED.format(user=user, reason=reason)
    if kind == "deleted":
        return "[deleted]"
    if kind == "removed":
        return "[removed]"
    if kind == "empty":
        return ""
    if kind == "whitespace":
        return _WHITESPACE[int(rng.integers(len(_WHITESPACE)))]
    if kind == "overlong":
        return _write_overlong(rng, elements, archetype, style)
    raise ValueError(f"unknown junk kind {kind!r}")


def _junk_upvotes(rng: np.random.Generator, kind: str, exposure: float) -> int:
    """Random upvotes, independent of quality: bots usually 1, others quality-free lognormal."""
    if kind.startswith("bot_"):
        return 1 if rng.random() < 0.85 else int(rng.integers(0, 4))
    return int(math.floor(math.exp(UPVOTE_BASE + exposure + rng.normal(0.0, 1.0))))


def _write_prompt(rng: np.random.Generator, elements: tuple[str, str, str]) -> tuple[str, str]:
    name, place, obj = elements
    template = _TITLE_TEMPLATES[int(rng.integers(len(_TITLE_TEMPLATES)))]
    title = template.format(N=name, P=place, O=obj, a_O=article(obj))
    text = ""
    if rng.random() < _POST_TEXT_RATE:
        text = _POST_TEXTS[int(rng.integers(len(_POST_TEXTS)))]
    return title, text


# --------------------------------------------------------------------------- the generator


def generate_corpus(
    n_prompts: int,
    seed: int,
    mean_responses: float = 11.0,
    max_responses: int = 60,
    junk_rate: float = 0.06,
    quality_noise_sd: float = QUALITY_NOISE_SD,
    upvote_noise_sd: float = UPVOTE_NOISE_SD,
) -> Corpus:
    """Generate `n_prompts` WP-shaped records with known archetype, style and quality.

    `mean_responses` is the mean number of comments per prompt (junk included), drawn as
    2 + NegativeBinomial and capped at `max_responses`; each comment is junk with
    probability `junk_rate` while at least 2 real stories remain. A story's latent quality has
    the noise `quality_noise_sd` (what its text does not show) and its log-upvotes the readers'
    noise `upvote_noise_sd` on top. Same arguments, same
    output (one `numpy.random.Generator(seed)`). See the package docstring
    (`divwrite.data.corpus`) for the design.
    """
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    if max_responses < 2:
        raise ValueError(f"max_responses must be >= 2 (every prompt has 2 stories), got {max_responses}")
    if not 2.0 <= mean_responses <= max_responses:
        raise ValueError(f"mean_responses must be in [2, max_responses={max_responses}], got {mean_responses}")
    if not 0.0 <= junk_rate < 1.0:
        raise ValueError(f"junk_rate must be in [0, 1), got {junk_rate}")
    n_combinations = len(NAMES) * len(PLACES) * len(OBJECTS)
    if n_prompts > n_combinations // 2:
        raise ValueError(f"n_prompts={n_prompts} exceeds what the element pools support ({n_combinations // 2})")

    rng = np.random.default_rng(seed)
    names = tuple(NAMES)
    arch_p = np.array([ARCHETYPE_POPULARITY[a] for a in ARCHETYPES])
    style_p = np.array([STYLE_POPULARITY[s] for s in STYLES])
    junk_p = np.array(_JUNK_WEIGHTS) / sum(_JUNK_WEIGHTS)
    extra_mean = mean_responses - 2.0
    nb_p = RESPONSES_DISPERSION / (RESPONSES_DISPERSION + extra_mean) if extra_mean > 0 else 1.0

    records: list[dict] = []
    truth_rows: list[dict] = []
    prompt_rows: list[dict] = []
    seen_triples: set[tuple[str, str, str]] = set()
    while len(records) < n_prompts:
        elements = (
            names[int(rng.integers(len(names)))],
            PLACES[int(rng.integers(len(PLACES)))],
            OBJECTS[int(rng.integers(len(OBJECTS)))],
        )
        if elements in seen_triples:
            continue
        seen_triples.add(elements)
        title, text = _write_prompt(rng, elements)
        pid = prompt_id(title, text)
        exposure = float(rng.normal(0.0, UPVOTE_EXPOSURE_SD))

        n_comments = 2 + (int(rng.negative_binomial(RESPONSES_DISPERSION, nb_p)) if extra_mean > 0 else 0)
        n_comments = min(n_comments, max_responses)
        is_junk = rng.random(n_comments) < junk_rate
        while n_comments - int(is_junk.sum()) < 2:  # at least 2 real stories per prompt
            is_junk[int(np.flatnonzero(is_junk)[0])] = False

        texts: list[str] = []
        scores: list[int] = []
        for index in range(n_comments):
            archetype = ARCHETYPES[int(rng.choice(len(ARCHETYPES), p=arch_p))]
            style = STYLES[int(rng.choice(len(STYLES), p=style_p))]
            if is_junk[index]:
                kind = JUNK_KINDS[int(rng.choice(len(JUNK_KINDS), p=junk_p))]
                body = _junk_text(rng, kind, elements, archetype, style)
                votes = _junk_upvotes(rng, kind, exposure)
                latent = float("nan")
                if kind != "overlong":
                    archetype = style = NONE
            else:
                kind = ""
                body = write_story(rng, elements, archetype, style)
                latent = ARCHETYPE_QUALITY[archetype] + STYLE_QUALITY[style] + float(rng.normal(0.0, quality_noise_sd))
                log_votes = UPVOTE_BASE + exposure + UPVOTE_SLOPE * latent + float(rng.normal(0.0, upvote_noise_sd))
                votes = int(math.floor(math.exp(log_votes)))
            texts.append(body)
            scores.append(votes)
            truth_rows.append(
                {
                    "prompt_id": pid,
                    "response_index": index,
                    "response_id": response_id(pid, index),
                    "archetype": archetype,
                    "style": style,
                    "latent_quality": latent,
                    "junk": kind,
                }
            )
        records.append({"post_title": title, "post_text": text, "comment_texts": texts, "comment_scores": scores})
        prompt_rows.append({"prompt_id": pid, "elements": list(elements)})

    truth_responses = pd.DataFrame(
        truth_rows,
        columns=["prompt_id", "response_index", "response_id", "archetype", "style", "latent_quality", "junk"],
    ).astype({"response_index": "int64", "latent_quality": "float64"})
    truth_prompts = pd.DataFrame(prompt_rows, columns=["prompt_id", "elements"])
    return Corpus(records=records, truth_responses=truth_responses, truth_prompts=truth_prompts)
