"""The built-in corpus: r/WritingPrompts-shaped records generated with a KNOWN latent structure.

Real Reddit data cannot tell whether a model's output got *more diverse in plot* or merely
*noisier*, nor whether its quality truly fell. This generator writes short stories whose
plot, voice and quality are known, so the paper's claim (deviation weighting buys
diversity at little quality cost) can be checked where the truth is known. It is designed
on principle, not tuned so that any method wins: popularity and quality disagree in both
directions (some rare choices are good, one rare choice of each axis is bad), and the
upvotes that training sees are a noisy signal of quality, as on Reddit.

Records
    One dict per prompt, shaped like the Hugging Face dataset
    `euclaise/WritingPrompts_preferences`: `post_title` (str, "[WP] ..."), `post_text`
    (str, usually ""), `comment_texts` (list[str]) and `comment_scores` (list[int],
    upvotes).

Prompts
    Three *elements* per prompt: a character name, a place and an object, drawn from pools
    of distinct single words that no archetype lexicon uses. They are rendered through one
    of several title templates; one post in four has a short, element-free post text.
    Every story (junk aside) mentions all three elements: the opening always names the
    hero and the place, the next beat always involves the object. Topicality is therefore
    learnable and constant in the human data, so deviation among human stories never
    comes from leaving elements out (``findings.md``: omissions made outliers that
    deviation weighting rewarded). `on_topic` checks it on any text.

Semantic axis: 6 plot archetypes (`ARCHETYPES`)
    quest, romance, mystery, heist, revenge, homecoming. Each has its own lexicon (a set
    of words that no other archetype, element pool or style uses) and five plot slots
    (opening at the place, inciting beat with the object, complication, climax,
    resolution) with three beat variants each, plus archetype-specific dialogue lines
    and side characters. Beats are *content*: clauses of subject + verb lemma + complement
    (+ optional non-finite tail), with no tense or person fixed.

Style axis: 5 narrative styles (`STYLES`)
    A style is a point in (person, tense, dialogue, rhythm):

    ============  ======  =======  ========  ==========================================
    style         person  tense    dialogue  rhythm
    ============  ======  =======  ========  ==========================================
    classic       third   past     no        medium sentences (~10 words), some "and"
    dialogue      third   past     yes       medium, two quoted lines with "said/asked"
    confessional  first   past     no        medium; "My name was ..." / "I ..."
    terse         third   present  no        short clauses; tails split off as verbless
                                             fragments ("At midnight."), "Silence."
    lyrical       first   present  no        long flowing sentences: ", and", ";",
                                             "while", "as", similes
    ============  ======  =======  ========  ==========================================

    A style realises any archetype's clauses through a conjugation table (person x
    tense) and a rhythm (how clauses are trimmed and joined), so the two axes are
    independent: every archetype can be written in every style, and each style leaves a
    distinct function-word/punctuation signature (I/my vs he/she, -ed forms vs -s forms,
    quote marks, sentence length, semicolons). Stories run mostly 40-90 words (mean ~65).

Popularity (what writers pick) and quality (what readers like)
    Archetype and style are drawn independently per story from the skewed
    `ARCHETYPE_POPULARITY` (40/25/13/10/7/5 %) and `STYLE_POPULARITY` (40/25/17/11/7 %).
    Latent quality = ARCHETYPE_QUALITY[a] + STYLE_QUALITY[s] + N(0, 0.6). The common
    choices are mediocre; several rare archetypes (mystery, revenge, homecoming) and rare
    styles (confessional, lyrical) are good, with no single runaway best (with one best
    rare archetype, deviation weighting can collapse onto it: findings.md); and one rare
    choice on each axis (heist, terse) is the worst, so rarity alone is not rewarded.

Upvotes
    Heavy-tailed and driven by latent quality: per comment,
    ``floor(exp(1.4 + e_p + 1.1 * q + N(0, 0.6)))`` with a per-thread exposure
    e_p ~ N(0, 0.5) (some threads are seen by more readers). Non-negative integers, median
    about 5, a few viral stories in the hundreds (~20 over 100 at 400 prompts); about half
    of the within-prompt pairs differ by >= 5, and log-upvotes correlate ~0.7 with latent
    quality. Upvotes depend on nothing but quality, thread exposure and noise.

Threads
    Comments per prompt = 2 + NegativeBinomial(1, mean `mean_responses` - 2), at most
    `max_responses`: min 2, median < mean, a long tail (paper Table 3 has mean 4.4,
    median 2, max 500; the default mean 11 gives deviation something to work on). Each
    comment is junk with probability `junk_rate`, as long as at least 2 real stories
    remain: moderator bot comments ("**Welcome to the Prompt!**", "**Off-Topic
    Discussion**", "... this submission has been removed ..."; upvotes usually 1),
    "[deleted]" / "[removed]" bodies, "" and whitespace-only bodies, and overlong stories
    (> 600 words, a story rambling on). Junk upvotes are random (quality-free).

Truth
    `Corpus.truth_responses` has one row per comment (prompt_id, response_index,
    response_id, archetype, style, latent_quality, junk); junk rows have latent_quality
    NaN and archetype/style "none" (an overlong story keeps the archetype and style it
    was written in). `Corpus.truth_prompts` maps prompt_id to its element words.

Detectors
    `detect_archetype` (argmax of lexicon hits), `detect_style` (person, tense, dialogue
    share and sentence length matched against the style profiles), `on_topic` and
    `true_quality` (noise-free quality, penalised when off-topic or unrecognisable) work
    on any text, generated text included, and recover the truth on the generator's own
    stories (>= 99.9 % for both detectors; see tests/test_corpus.py). Everything is
    deterministic in `seed` (one numpy Generator).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from divwrite.core.records import prompt_id, response_id

__all__ = [
    "ARCHETYPES",
    "STYLES",
    "ARCHETYPE_POPULARITY",
    "ARCHETYPE_QUALITY",
    "STYLE_POPULARITY",
    "STYLE_QUALITY",
    "QUALITY_NOISE_SD",
    "QUALITY_PENALTY",
    "JUNK_KINDS",
    "NONE",
    "Corpus",
    "generate_corpus",
    "detect_archetype",
    "detect_style",
    "style_features",
    "on_topic",
    "true_quality",
]

NONE = "none"

# --------------------------------------------------------------------------- the truth tables

ARCHETYPES: tuple[str, ...] = ("quest", "romance", "mystery", "heist", "revenge", "homecoming")
STYLES: tuple[str, ...] = ("classic", "dialogue", "confessional", "terse", "lyrical")

ARCHETYPE_POPULARITY: dict[str, float] = {
    "quest": 0.40,
    "romance": 0.25,
    "mystery": 0.13,
    "heist": 0.10,
    "revenge": 0.07,
    "homecoming": 0.05,
}
ARCHETYPE_QUALITY: dict[str, float] = {
    "quest": 0.0,
    "romance": 0.1,
    "mystery": 0.6,
    "heist": -0.3,
    "revenge": 0.5,
    "homecoming": 0.7,
}
STYLE_POPULARITY: dict[str, float] = {
    "classic": 0.40,
    "dialogue": 0.25,
    "confessional": 0.17,
    "terse": 0.11,
    "lyrical": 0.07,
}
STYLE_QUALITY: dict[str, float] = {
    "classic": 0.0,
    "dialogue": 0.2,
    "confessional": 0.3,
    "terse": -0.2,
    "lyrical": 0.4,
}
QUALITY_NOISE_SD = 0.6
# Subtracted by `true_quality` for each failure: off-topic, no archetype, no style. As
# large as the whole spread of archetype effects, so a story that ignores its prompt or
# has no recognisable plot never ties with a proper one of the worst archetype.
QUALITY_PENALTY = 1.0

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

# --------------------------------------------------------------------------- prompt elements

# name -> grammatical gender of the hero ("f"/"m"), for third-person pronouns.
_NAMES: dict[str, str] = {
    "Mara": "f", "Elena": "f", "Priya": "f", "Ines": "f", "Yuki": "f", "Greta": "f",
    "Amara": "f", "Nadia": "f", "Zara": "f", "Wren": "f", "Lena": "f", "Odette": "f",
    "Rosa": "f", "Signe": "f", "Talia": "f",
    "Tobias": "m", "Silas": "m", "Jonah": "m", "Rafael": "m", "Omar": "m", "Felix": "m",
    "Lucan": "m", "Otto": "m", "Idris": "m", "Caspar": "m", "Emil": "m", "Hugo": "m",
    "Milo": "m", "Anselm": "m", "Dario": "m",
}  # fmt: skip
_PLACES: tuple[str, ...] = (
    "lighthouse", "bakery", "subway", "greenhouse", "library", "circus", "monastery",
    "laundromat", "observatory", "orchard", "aquarium", "shipyard", "cathedral", "carnival",
    "vineyard", "theater", "hospital", "junkyard", "bookshop", "ferry", "marketplace",
    "windmill", "planetarium", "boathouse", "brewery", "zoo", "quarry", "railyard",
    "chapel", "bathhouse",
)  # fmt: skip
_OBJECTS: tuple[str, ...] = (
    "lantern", "violin", "umbrella", "teapot", "typewriter", "pocketwatch", "kite",
    "bicycle", "mirror", "harmonica", "accordion", "telescope", "metronome", "seashell",
    "thimble", "scarf", "birdcage", "chessboard", "gramophone", "paintbrush", "snowglobe",
    "puppet", "candle", "feather", "lighter", "teacup", "postcard", "tuba", "marble",
    "bell",
)  # fmt: skip

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

# --------------------------------------------------------------------------- the grammar

# lemma -> (third person singular present, past). First person present is the lemma.
_VERBS: dict[str, tuple[str, str]] = {
    "be": ("is", "was"), "have": ("has", "had"), "arrest": ("arrests", "arrested"),
    "arrive": ("arrives", "arrived"), "ask": ("asks", "asked"), "blush": ("blushes", "blushed"),
    "bow": ("bows", "bowed"), "bring": ("brings", "brought"), "burn": ("burns", "burned"),
    "call": ("calls", "called"), "carry": ("carries", "carried"), "change": ("changes", "changed"),
    "climb": ("climbs", "climbed"), "close": ("closes", "closed"), "come": ("comes", "came"),
    "confess": ("confesses", "confessed"), "confront": ("confronts", "confronted"),
    "corner": ("corners", "cornered"), "crack": ("cracks", "cracked"), "crawl": ("crawls", "crawled"),
    "cross": ("crosses", "crossed"), "dance": ("dances", "danced"), "describe": ("describes", "described"),
    "die": ("dies", "died"), "discover": ("discovers", "discovered"), "draw": ("draws", "drew"),
    "drop": ("drops", "dropped"), "examine": ("examines", "examined"), "face": ("faces", "faced"),
    "feel": ("feels", "felt"), "find": ("finds", "found"), "gather": ("gathers", "gathered"),
    "give": ("gives", "gave"), "grab": ("grabs", "grabbed"), "hesitate": ("hesitates", "hesitated"),
    "hide": ("hides", "hid"), "hire": ("hires", "hired"), "hug": ("hugs", "hugged"),
    "hunt": ("hunts", "hunted"), "keep": ("keeps", "kept"), "kiss": ("kisses", "kissed"),
    "learn": ("learns", "learned"), "leave": ("leaves", "left"), "lie": ("lies", "lied"),
    "lose": ("loses", "lost"), "marry": ("marries", "married"), "match": ("matches", "matched"),
    "meet": ("meets", "met"), "mock": ("mocks", "mocked"), "need": ("needs", "needed"),
    "open": ("opens", "opened"), "pack": ("packs", "packed"), "point": ("points", "pointed"),
    "question": ("questions", "questioned"), "reach": ("reaches", "reached"),
    "refuse": ("refuses", "refused"), "return": ("returns", "returned"), "roar": ("roars", "roared"),
    "sharpen": ("sharpens", "sharpened"), "sit": ("sits", "sat"), "slip": ("slips", "slipped"),
    "smile": ("smiles", "smiled"), "solve": ("solves", "solved"), "spare": ("spares", "spared"),
    "speak": ("speaks", "spoke"), "spot": ("spots", "spotted"), "stand": ("stands", "stood"),
    "start": ("starts", "started"), "stay": ("stays", "stayed"), "steal": ("steals", "stole"),
    "step": ("steps", "stepped"), "study": ("studies", "studied"), "switch": ("switches", "switched"),
    "take": ("takes", "took"), "taste": ("tastes", "tasted"), "trade": ("trades", "traded"),
    "unpack": ("unpacks", "unpacked"), "unroll": ("unrolls", "unrolled"), "vanish": ("vanishes", "vanished"),
    "wait": ("waits", "waited"), "walk": ("walks", "walked"), "watch": ("watches", "watched"),
    "work": ("works", "worked"), "write": ("writes", "wrote"), "say": ("says", "said"),
    "catch": ("catches", "caught"), "tie": ("ties", "tied"), "investigate": ("investigates", "investigated"),
    "welcome": ("welcomes", "welcomed"), "plant": ("plants", "planted"), "block": ("blocks", "blocked"),
    "flee": ("flees", "fled"), "turn": ("turns", "turned"), "remember": ("remembers", "remembered"),
    "notice": ("notices", "noticed"), "choose": ("chooses", "chose"), "hang": ("hangs", "hung"),
    "hand": ("hands", "handed"), "mark": ("marks", "marked"), "doubt": ("doubts", "doubted"),
    "admit": ("admits", "admitted"), "fall": ("falls", "fell"), "try": ("tries", "tried"),
    "thank": ("thanks", "thanked"), "file": ("files", "filed"), "plan": ("plans", "planned"),
    "count": ("counts", "counted"), "memorize": ("memorizes", "memorized"), "calm": ("calms", "calmed"),
    "spill": ("spills", "spilled"), "scatter": ("scatters", "scattered"), "swear": ("swears", "swore"),
    "ache": ("aches", "ached"), "grow": ("grows", "grew"), "send": ("sends", "sent"),
    "swallow": ("swallows", "swallowed"), "beg": ("begs", "begged"), "fade": ("fades", "faded"),
    "look": ("looks", "looked"), "hold": ("holds", "held"), "laugh": ("laughs", "laughed"),
    "tell": ("tells", "told"), "fill": ("fills", "filled"), "miss": ("misses", "missed"),
    "cry": ("cries", "cried"), "pour": ("pours", "poured"),
}  # fmt: skip

# A clause: (subject, verb lemma, core complement, tail). Subject "H" is the hero (name or
# pronoun, or "I"); any other subject is a third-person singular noun phrase. Complements
# may use {P} place, {O} object, {a_O} object with article, {poss} and {obj} (the hero's
# possessive and object pronoun). Tails are non-finite modifiers (no conjugated verb), so
# they never contradict the tense; the terse rhythm drops them.
_Clause = tuple[str, str, str, str]
_Beat = tuple[_Clause, ...]


@dataclass(frozen=True)
class _Archetype:
    lexicon: frozenset[str]
    slots: tuple[tuple[_Beat, ...], ...]  # 5 slots x variants; slot 0 uses {P}, slot 1 {O}
    dialogue: tuple[tuple[str, str], ...]  # (speaker: "H" or a noun phrase, line)


_GRAMMAR: dict[str, _Archetype] = {
    "quest": _Archetype(
        lexicon=frozenset(
            "quest journey map maps mountain mountains summit dragon dragons sword prophecy kingdom "
            "trail relic oracle peaks ridge pilgrim wilderness beast".split()
        ),
        slots=(
            (
                (
                    ("H", "leave", "the {P} at first light", "to begin the long journey north"),
                    ("H", "carry", "{poss} sword", "and a worn map of the mountains"),
                ),
                (
                    ("H", "stand", "at the gate of the {P}", "looking toward the distant mountains"),
                    ("the old oracle", "speak", "of a prophecy", "with {obj} at its center"),
                ),
                (
                    ("H", "study", "the map by the fire in the {P}", "late into the night"),
                    ("H", "choose", "the northern trail", "through the mountains"),
                ),
            ),
            (
                (
                    ("H", "find", "{a_O} beside the trail", "glowing with the light of the old kingdom"),
                    ("H", "take", "it", "as a sign for the quest"),
                ),
                (
                    ("the old oracle", "give", "{obj} {a_O}", "for the quest ahead"),
                    ("H", "tie", "the {O} to {poss} sword belt", ""),
                ),
                (
                    ("H", "trade", "{poss} last coin for {a_O}", "at a pilgrim camp on the trail"),
                    ("an old pilgrim", "call", "it the key to the kingdom", ""),
                ),
            ),
            (
                (
                    ("a storm", "close", "the mountain road", ""),
                    ("H", "lose", "the trail", "in the snow of the high peaks"),
                ),
                (
                    ("H", "cross", "a frozen river below the summit", "in the dead of winter"),
                    ("the trail", "vanish", "under the snow", ""),
                ),
                (("the dragon", "block", "the road to the summit", ""), ("H", "draw", "{poss} sword", "")),
            ),
            (
                (
                    ("H", "climb", "the last ridge", "with the {O} in {poss} hand"),
                    ("the dragon", "bow", "before the light of the relic", ""),
                ),
                (("H", "face", "the dragon", "on the summit"), ("the beast", "flee", "into the wilderness", "")),
                (("H", "reach", "the summit", "at last"), ("H", "find", "the relic of the prophecy", "under the ice")),
            ),
            (
                (("H", "bring", "the relic back to the kingdom", ""), ("the prophecy", "come", "true", "at last")),
                (
                    ("the kingdom", "welcome", "{obj} as a hero", "with songs and banners"),
                    ("H", "hang", "the {O} in the great hall of the kingdom", ""),
                ),
                (
                    ("H", "plant", "the sword on the summit", ""),
                    ("H", "walk", "back down the trail", "lighter than before"),
                ),
            ),
        ),
        dialogue=(
            ("the old oracle", "The map says the summit is three days away"),
            ("H", "Every prophecy has a price"),
            ("H", "We climb the ridge at dawn"),
            ("the old oracle", "The dragon sleeps on the summit"),
            ("H", "This journey will take everything we have"),
            ("the old oracle", "Follow the trail north and never stop"),
            ("H", "Is the kingdom worth the journey?"),
        ),
    ),
    "romance": _Archetype(
        lexicon=frozenset(
            "love loves loved lover heart hearts kiss kissed kisses sweetheart dance danced dances "
            "rose roses blush blushes blushed smile smiles smiled wedding suitor marry marries married "
            "tender cheek flirt".split()
        ),
        slots=(
            (
                (
                    ("H", "meet", "a stranger at the {P}", "on the first warm evening of spring"),
                    ("H", "feel", "{poss} heart skip", ""),
                ),
                (
                    ("H", "work", "at the {P}", "hoping for love"),
                    ("H", "notice", "the same shy smile", "every morning"),
                ),
                (
                    ("H", "write", "a love letter in the {P}", "at a corner table"),
                    ("H", "blush", "at {poss} own words", ""),
                ),
            ),
            (
                (
                    ("the stranger", "leave", "{a_O} and a single rose", "on {poss} table"),
                    ("H", "smile", "at the rose", "for the rest of the day"),
                ),
                (
                    ("H", "give", "the stranger {a_O}", "as a tender token of love"),
                    ("the stranger", "blush", "a deep red", ""),
                ),
                (
                    ("H", "find", "a love note inside {a_O}", "in a careful hand"),
                    ("the note", "ask", "{obj} to the spring dance", ""),
                ),
            ),
            (
                (
                    ("H", "blush", "", "at every glance from the stranger"),
                    ("H", "lose", "{poss} words", "around the stranger"),
                ),
                (("a handsome suitor", "ask", "the stranger to the dance", ""), ("H", "feel", "{poss} heart sink", "")),
                (
                    ("H", "hesitate", "at the door", "with trembling hands and a pounding heart"),
                    ("H", "hide", "the love letter", "in {poss} coat"),
                ),
            ),
            (
                (("H", "confess", "{poss} love", "under the string lights"), ("the stranger", "kiss", "{obj}", "")),
                (("H", "dance", "with the stranger", "cheek to cheek until midnight"),),
                (("the stranger", "take", "{poss} hand", ""), ("H", "kiss", "the stranger", "beneath the roses")),
            ),
            (
                (("H", "marry", "the stranger", "the next spring"), ("the {O}", "sit", "on the wedding table", "")),
                (
                    ("H", "keep", "the love letter", "close to {poss} heart forever"),
                    ("the stranger", "kiss", "{obj} good night", ""),
                ),
                (("H", "smile", "at the stranger", "with {poss} whole heart"), ("the stranger", "smile", "back", "")),
            ),
        ),
        dialogue=(
            ("the stranger", "I think I am falling in love with you"),
            ("H", "Will you dance with me?"),
            ("H", "My heart has been yours since the first day"),
            ("the stranger", "Stay with me tonight, sweetheart"),
            ("H", "Every love letter was for you"),
            ("the stranger", "I saved you the last dance"),
        ),
    ),
    "mystery": _Archetype(
        lexicon=frozenset(
            "mystery clue clues detective footprints suspect suspects alibi alibis riddle culprit "
            "witness evidence puzzle case inspector fingerprints motive crime murder investigate "
            "investigates investigated solve solves solved solution disappearance body examine "
            "examines examined".split()
        ),
        slots=(
            (
                (
                    ("H", "arrive", "at the {P}", "to investigate a strange disappearance"),
                    ("the inspector", "hand", "{obj} the case file", ""),
                ),
                (
                    ("a janitor", "discover", "a body in the {P}", "just after midnight"),
                    ("H", "take", "the case", "without hesitation"),
                ),
                (
                    ("H", "examine", "the footprints outside the {P}", "in the grey light"),
                    ("the inspector", "call", "it a strange case", ""),
                ),
            ),
            (
                (
                    ("H", "find", "a clue inside {a_O}", "under a layer of dust"),
                    ("the clue", "point", "to a second suspect", ""),
                ),
                (
                    ("the witness", "describe", "{a_O}", "near the scene of the crime"),
                    ("H", "mark", "it as evidence", ""),
                ),
                (
                    ("H", "study", "{a_O} for fingerprints", "under the lamp"),
                    ("the fingerprint", "match", "no known suspect", ""),
                ),
            ),
            (
                (("every suspect", "have", "an alibi", ""), ("the evidence", "point", "nowhere", "")),
                (("the witness", "lie", "to the inspector", ""), ("H", "doubt", "the alibi", "")),
                (("H", "question", "each suspect", "late into the night"), ("nobody", "admit", "to the crime", "")),
            ),
            (
                (("H", "solve", "the riddle", "in the last hour"), ("the culprit", "confess", "", "")),
                (("H", "spot", "the one clue", "missing from every report"), ("the puzzle", "fall", "into place", "")),
                (("H", "match", "the fingerprints", "to the culprit"), ("the culprit", "try", "to run", "")),
            ),
            (
                (("H", "close", "the case", "before dawn"), ("the witness", "thank", "{obj}", "")),
                (
                    ("the inspector", "arrest", "the culprit", "at the {P}"),
                    ("H", "file", "the last of the evidence", ""),
                ),
                (
                    ("H", "write", "the solution to the puzzle", "in a worn notebook"),
                    ("H", "close", "the case file", "for good"),
                ),
            ),
        ),
        dialogue=(
            ("H", "The clues never lie"),
            ("the inspector", "Where were you on the night of the murder?"),
            ("H", "Somebody in this room is the culprit"),
            ("the inspector", "Every suspect has a motive"),
            ("H", "Show me the evidence"),
            ("the witness", "The footprints lead to the cellar"),
        ),
    ),
    "heist": _Archetype(
        lexicon=frozenset(
            "heist vault vaults crew loot alarm guard guards blueprints getaway diamond diamonds "
            "combination tunnel lookout codes disguise steal steals stole stolen crack cracks "
            "cracked van".split()
        ),
        slots=(
            (
                (("H", "watch", "the vault under the {P}", "for a week"), ("H", "plan", "the heist of the decade", "")),
                (
                    ("H", "gather", "a crew in the back room of the {P}", "after closing time"),
                    ("H", "unroll", "the blueprints", "across the table"),
                ),
                (
                    ("H", "slip", "into the {P}", "in a janitor's disguise"),
                    ("H", "count", "the guards", "on every floor"),
                ),
            ),
            (
                (("H", "hide", "the vault codes inside {a_O}", ""), ("the crew", "memorize", "the blueprints", "")),
                (("the crew", "need", "{a_O}", "to fool the alarm"), ("H", "steal", "one", "from a sleeping guard")),
                (
                    ("H", "pack", "{a_O} for the heist", "among the tools"),
                    ("the crew", "wait", "in the getaway van", ""),
                ),
            ),
            (
                (("the alarm", "start", "to ring", ""), ("the guard", "turn", "toward the vault", "")),
                (
                    ("the lookout", "lose", "{poss} nerve", "at the worst moment"),
                    ("H", "crawl", "through the tunnel", "alone"),
                ),
                (
                    ("the guard", "change", "the combination", "at midnight"),
                    ("H", "calm", "the crew", "with a steady voice"),
                ),
            ),
            (
                (
                    ("H", "crack", "the vault", "in ninety seconds"),
                    ("a river of diamonds", "spill", "across the floor", ""),
                ),
                (("H", "grab", "the loot", "under the nose of the guard"), ("the alarm", "stay", "silent", "")),
                (
                    ("H", "switch", "the real diamond for a fake", "without a sound"),
                    ("the guard", "notice", "nothing", ""),
                ),
            ),
            (
                (
                    ("the getaway van", "roar", "into the night", "with the crew laughing inside"),
                    ("H", "count", "the loot", "by dawn"),
                ),
                (("H", "vanish", "before dawn", "with the loot"), ("nobody", "catch", "the crew", "")),
                (
                    ("H", "leave", "a single diamond on the counter", "as a calling card"),
                    ("the crew", "scatter", "across the country", "with the loot"),
                ),
            ),
        ),
        dialogue=(
            ("H", "The vault opens at midnight"),
            ("the lookout", "Nobody touches the alarm"),
            ("H", "Stick to the blueprints and we all get paid"),
            ("the lookout", "Two minutes until the guards come back"),
            ("H", "This is my last heist"),
            ("the lookout", "Is the getaway van ready?"),
        ),
    ),
    "revenge": _Archetype(
        lexicon=frozenset(
            "revenge vengeance traitor traitors enemy enemies betrayal betray betrayed grudge scar "
            "blood debt dagger fury justice ruin ruins hatred avenge avenged sharpen sharpens "
            "sharpened blades swear swears swore".split()
        ),
        slots=(
            (
                (
                    ("H", "come", "back to the {P} with a scar", "and an old grudge"),
                    ("H", "swear", "revenge", "on the traitor"),
                ),
                (
                    ("H", "wait", "in the shadows of the {P}", "nursing an old grudge"),
                    ("H", "count", "the days until {poss} revenge", ""),
                ),
                (("H", "remember", "the betrayal in the {P}", "every night"), ("the scar", "ache", "in the cold", "")),
            ),
            (
                (
                    ("H", "hide", "a dagger inside {a_O}", "for the day of vengeance"),
                    ("H", "sharpen", "the dagger", "every night"),
                ),
                (
                    ("the traitor", "drop", "{a_O}", "on the night of the betrayal"),
                    ("H", "keep", "it", "as proof of the blood debt"),
                ),
                (
                    ("H", "carry", "{a_O} from the night of the betrayal", "like a vow"),
                    ("the debt", "grow", "heavier", ""),
                ),
            ),
            (
                (("H", "hunt", "the traitor", "through the city"), ("the enemy", "hire", "more blades", "")),
                (
                    ("H", "learn", "the name of the traitor", "from a dying thief"),
                    ("the enemy", "send", "killers", "after {obj}"),
                ),
                (
                    ("the enemy", "mock", "{obj}", "from across the street"),
                    ("H", "swallow", "{poss} fury", "for one more day"),
                ),
            ),
            (
                (("H", "corner", "the traitor", "in the rain"), ("H", "draw", "the dagger", "without a word")),
                (("H", "burn", "the house of the enemy", "to the ground"), ("the traitor", "beg", "for mercy", "")),
                (
                    ("H", "confront", "the traitor", "with blood on {poss} hands"),
                    ("the enemy", "fall", "without a sound", ""),
                ),
            ),
            (
                (("H", "take", "{poss} revenge", "at last"), ("the grudge", "die", "with the traitor", "")),
                (("H", "spare", "the traitor", "in the end"), ("vengeance", "taste", "like ash", "")),
                (
                    ("H", "walk", "away from the ruins", "with nothing more to collect"),
                    ("the old grudge", "fade", "at last", ""),
                ),
            ),
        ),
        dialogue=(
            ("H", "You betrayed me and now you will pay"),
            ("H", "I have waited ten winters for this"),
            ("the traitor", "Revenge is all you have left"),
            ("H", "Blood pays for blood"),
            ("H", "Tell the traitor I am coming"),
            ("the enemy", "There is no justice, only vengeance"),
        ),
    ),
    "homecoming": _Archetype(
        lexicon=frozenset(
            "home homecoming mother father village childhood porch family brother sister kitchen "
            "hometown attic supper memories hug hugs hugged return returns returned bedroom".split()
        ),
        slots=(
            (
                (
                    ("H", "return", "to the {P}", "after twenty years away from home"),
                    ("the village", "look", "the same", ""),
                ),
                (
                    ("H", "step", "off the bus at the {P}", "in the village of {poss} childhood"),
                    ("H", "carry", "{poss} suitcase home", ""),
                ),
                (
                    ("H", "walk", "past the {P}", "on the road back to {poss} village"),
                    ("{poss} childhood", "come", "back to {obj}", "all at once"),
                ),
            ),
            (
                (
                    ("{poss} mother", "keep", "{a_O} from {poss} childhood", "on the kitchen shelf"),
                    ("H", "hold", "it", "for a long moment"),
                ),
                (
                    ("H", "bring", "{a_O} home", "as a gift for the family"),
                    ("{poss} sister", "laugh", "at the gift", ""),
                ),
                (
                    ("H", "find", "{a_O} in the attic", "of the family house"),
                    ("{poss} father", "tell", "the story of the {O}", "over supper"),
                ),
            ),
            (
                (
                    ("{poss} brother", "refuse", "to speak to {obj}", "at first"),
                    ("an old silence", "fill", "the kitchen", ""),
                ),
                (
                    ("the village", "feel", "smaller than {poss} memories", ""),
                    ("H", "miss", "the city", "for a moment"),
                ),
                (
                    ("H", "sit", "alone on the porch", "full of regret for the missing years"),
                    ("{poss} sister", "bring", "{obj} tea", ""),
                ),
            ),
            (
                (
                    ("{poss} mother", "open", "the door", "with wet eyes"),
                    ("H", "hug", "{poss} mother", "for a long time"),
                ),
                (("{poss} brother", "hug", "{obj}", "on the porch"), ("H", "cry", "for the first time in years", "")),
                (
                    ("the whole family", "gather", "in the kitchen", "for supper"),
                    ("H", "laugh", "with {poss} brother", "until midnight"),
                ),
            ),
            (
                (
                    ("H", "stay", "in the family house for good", "beside {poss} mother"),
                    ("the porch light", "burn", "every night", ""),
                ),
                (("H", "feel", "at home", "for the first time in years"), ("{poss} mother", "pour", "more tea", "")),
                (
                    ("H", "unpack", "{poss} bags", "in {poss} childhood bedroom"),
                    ("the house", "feel", "like home again", ""),
                ),
            ),
        ),
        dialogue=(
            ("{poss} mother", "Welcome home"),
            ("{poss} father", "You look just like your mother"),
            ("{poss} mother", "Supper is at six, like always"),
            ("{poss} brother", "We kept your bedroom the way you left it"),
            ("{poss} mother", "The whole village missed you"),
            ("H", "Is the porch swing still there?"),
        ),
    ),
}


@dataclass(frozen=True)
class _Style:
    person: int  # 1 or 3
    tense: str  # "past" | "present"
    dialogue: bool  # two quoted lines (after the object beat and after the climax)
    rhythm: str  # "terse": one short clause per sentence, tails split off as fragments;
    # "medium": one clause per sentence, some pairs joined by ", and"; "flowing": 2-3 clauses
    # per sentence joined by ", and" / ";" / ", while" / ", as", often closed by a simile
    tail_rate: float  # probability that a clause keeps its tail (terse: as a fragment)


_STYLE_SPECS: dict[str, _Style] = {
    "classic": _Style(3, "past", False, "medium", 0.5),
    "dialogue": _Style(3, "past", True, "medium", 0.2),
    "confessional": _Style(1, "past", False, "medium", 0.5),
    "terse": _Style(3, "present", False, "terse", 0.4),
    "lyrical": _Style(1, "present", False, "flowing", 0.6),
}
# First-person naming clauses (the hero's name must appear in every story).
_NAMING: tuple[_Clause, ...] = (("my name", "be", "{N}", ""), ("everyone", "call", "me {N}", ""))
# Style glue: verbless, lexicon-free.
_FRAGMENTS: tuple[str, ...] = ("Silence.", "Cold air.", "Not yet.", "Then nothing.", "A long breath.", "No way back.", "Almost.")  # fmt: skip
_SIMILES: tuple[str, ...] = (", soft as snow", ", like an old song", ", slow as honey", ", bright and strange", ", heavy with silence")  # fmt: skip
_CONNECTORS: tuple[str, ...] = (", and ", "; ", ", while ", ", as ")
_SECOND_CLAUSE_RATE = 0.6  # share of two-clause beats that keep their second clause
_MEDIUM_JOIN_RATE = 0.3
_TERSE_FRAGMENT_RATE = 0.3
_PRONOUN_RATE = 0.6  # third person: share of later hero mentions that use the pronoun

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

# --------------------------------------------------------------------------- detectors' features

_WORD_RE = re.compile(r"[a-z]+")
_CASED_WORD_RE = re.compile(r"[A-Za-z]+")
_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")
_QUOTE_RE = re.compile(r'"[^"]*"')
_FIRST = frozenset({"i", "me", "my", "mine", "myself"})
_THIRD = frozenset({"he", "him", "his", "himself", "she", "her", "hers", "herself"})
_COMMON_PAST = frozenset(
    "was were had did said went came saw took made knew thought felt told found left got gave stood "
    "ran held brought began kept heard sat spoke drew wrote stole hid lost met fled caught".split()
)
_COMMON_PRESENT = frozenset("is am are has does says goes".split())
_NOT_PAST_ED = frozenset(
    "speed hundred indeed sacred naked wicked kindred seed greed breed bleed proceed succeed exceed "
    "feed weed need shed sled red shred bed".split()
)
_PAST_FORMS = frozenset({p for lemma, (s, p) in _VERBS.items() if p != lemma and p != s} | _COMMON_PAST)
_PRESENT_FORMS = frozenset({s for lemma, (s, p) in _VERBS.items() if s != p} | _COMMON_PRESENT)
_LEMMAS = frozenset(_VERBS) | {"am"}
_TERSE_MAX_SENTENCE = 7.0  # mean words per sentence below this: terse
_FLOWING_MIN_SENTENCE = 16.0  # above this: flowing
_DIALOGUE_MIN_SHARE = 0.05  # share of words inside quotes
_MIN_STYLE_WORDS = 12
# Mismatch costs in `detect_style`: grammar (person, tense) is decisive, surface features
# (dialogue share, sentence length) may be off by one.
_FEATURE_WEIGHTS = (2, 2, 1, 1)


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Corpus:
    """A generated corpus: the WP-shaped records and the truth behind them."""

    records: list[dict]
    truth_responses: pd.DataFrame  # prompt_id, response_index, response_id, archetype, style, latent_quality, junk
    truth_prompts: pd.DataFrame  # prompt_id, elements


# --------------------------------------------------------------------------- realisation


def _article(word: str) -> str:
    return f"an {word}" if word[0].lower() in "aeiou" else f"a {word}"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _conjugate(lemma: str, first_person: bool, tense: str) -> str:
    third, past = _VERBS[lemma]
    if tense == "past":
        return past
    if first_person:
        return "am" if lemma == "be" else lemma
    return third


class _Realiser:
    """Writes one archetype's beats in one style for one prompt's elements."""

    def __init__(self, rng: np.random.Generator, elements: tuple[str, str, str], style: _Style):
        self.rng = rng
        self.name, self.place, self.obj = elements
        self.style = style
        first = style.person == 1
        female = _NAMES.get(self.name, "f") == "f"
        self.fields = {
            "N": self.name,
            "P": self.place,
            "O": self.obj,
            "a_O": _article(self.obj),
            "poss": "my" if first else ("her" if female else "his"),
            "obj": "me" if first else ("her" if female else "him"),
        }
        self.pronoun = "I" if first else ("she" if female else "he")
        self.hero_mentions = 0

    def fill(self, template: str) -> str:
        return template.format(**self.fields)

    def hero(self) -> str:
        """The hero as a subject: "I"; or the name first, then mostly the pronoun (at least once)."""
        self.hero_mentions += 1
        if self.style.person == 1:
            return "I"
        if self.hero_mentions == 1:
            return self.name
        if self.hero_mentions == 2 or self.rng.random() < _PRONOUN_RATE:
            return self.pronoun
        return self.name

    def clause(self, clause: _Clause, with_tail: bool) -> tuple[str, str]:
        """(subject, predicate) of one clause, conjugated for the style."""
        subject, lemma, core, tail = clause
        is_hero = subject == "H"
        subj = self.hero() if is_hero else self.fill(subject)
        verb = _conjugate(lemma, is_hero and self.style.person == 1, self.style.tense)
        parts = [verb, self.fill(core)]
        if with_tail and tail:
            parts.append(self.fill(tail))
        return subj, " ".join(p for p in parts if p)

    def quote(self, speaker: str, line: str) -> str:
        """A line of dialogue as its own sentence, attributed in the style's tense."""
        spk = self.hero() if speaker == "H" else self.fill(speaker)
        if line.endswith("?"):
            verb = _conjugate("ask", spk == "I", self.style.tense)
            return f'"{line}" {spk} {verb}.'
        verb = _conjugate("say", spk == "I", self.style.tense)
        if self.rng.random() < 0.5:
            return f'"{line}," {spk} {verb}.'
        return f'{_capitalise(spk)} {verb}, "{line}."'

    def story(self, arch: _Archetype, beat_choice: list[int]) -> str:
        """Realise the archetype's five beats (variants `beat_choice`) as one paragraph."""
        style, rng = self.style, self.rng
        # Units: clauses (subject, predicate) or ready sentences (str), in story order.
        units: list[tuple[str, str] | str] = []
        if style.person == 1:
            naming = _NAMING[int(rng.integers(len(_NAMING)))]
            subj, pred = self.clause(naming, with_tail=False)
            units.append(_capitalise(f"{subj} {pred}") + ".")  # always a sentence of its own
        quote_slots = (1, 3) if style.dialogue else ()
        lines = list(arch.dialogue)
        order = rng.permutation(len(lines))
        n_quotes = 0
        for slot, variant in enumerate(beat_choice):
            beat = arch.slots[slot][variant]
            if len(beat) > 1 and rng.random() >= _SECOND_CLAUSE_RATE:
                beat = beat[:1]  # the first clause carries the beat (and the slot's element)
            for clause in beat:
                with_tail = bool(clause[3]) and rng.random() < style.tail_rate
                if style.rhythm == "terse":
                    units.append(self.clause(clause, with_tail=False))
                    if with_tail:  # the tail becomes a verbless fragment of its own
                        units.append(_capitalise(self.fill(clause[3])) + ".")
                else:
                    units.append(self.clause(clause, with_tail))
            if slot in quote_slots:
                speaker, line = lines[int(order[n_quotes])]
                n_quotes += 1
                units.append(self.quote(speaker, line))
            if style.rhythm == "terse" and rng.random() < _TERSE_FRAGMENT_RATE:
                units.append(_FRAGMENTS[int(rng.integers(len(_FRAGMENTS)))])
        return " ".join(self._sentences(units))

    def _sentences(self, units: list[tuple[str, str] | str]) -> list[str]:
        style, rng = self.style, self.rng
        sentences: list[str] = []
        run: list[tuple[str, str]] = []  # consecutive clauses waiting to be joined

        def flush() -> None:
            i = 0
            while i < len(run):
                if style.rhythm == "flowing":
                    size = int(rng.integers(2, 5))
                elif style.rhythm == "medium":
                    size = 2 if rng.random() < _MEDIUM_JOIN_RATE else 1
                else:
                    size = 1
                group = run[i : i + size]
                i += size
                text = " ".join(group[0])
                for subj, pred in group[1:]:
                    connector = (
                        ", and " if style.rhythm == "medium" else _CONNECTORS[int(rng.integers(len(_CONNECTORS)))]
                    )
                    text += f"{connector}{subj} {pred}"
                if style.rhythm == "flowing" and rng.random() < 0.5:
                    text += _SIMILES[int(rng.integers(len(_SIMILES)))]
                sentences.append(_capitalise(text) + ".")
            run.clear()

        for unit in units:
            if isinstance(unit, str):
                flush()
                sentences.append(unit)
            else:
                run.append(unit)
        flush()
        return sentences


def _write_story(rng: np.random.Generator, elements: tuple[str, str, str], archetype: str, style: str) -> str:
    arch = _GRAMMAR[archetype]
    beat_choice = [int(rng.integers(len(variants))) for variants in arch.slots]
    return _Realiser(rng, elements, _STYLE_SPECS[style]).story(arch, beat_choice)


def _write_overlong(rng: np.random.Generator, elements: tuple[str, str, str], archetype: str, style: str) -> str:
    """A story that rambles on past `OVERLONG_MIN_WORDS` words (paragraphs of retold beats)."""
    paragraphs: list[str] = []
    n_words = 0
    while n_words <= OVERLONG_MIN_WORDS:
        paragraph = _write_story(rng, elements, archetype, style)
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
    title = template.format(N=name, P=place, O=obj, a_O=_article(obj))
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
) -> Corpus:
    """Generate `n_prompts` WP-shaped records with known archetype, style and quality.

    `mean_responses` is the mean number of comments per prompt (junk included), drawn as
    2 + NegativeBinomial and capped at `max_responses`; each comment is junk with
    probability `junk_rate` while at least 2 real stories remain. Same arguments, same
    output (one `numpy.random.Generator(seed)`). See the module docstring for the design.
    """
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    if max_responses < 2:
        raise ValueError(f"max_responses must be >= 2 (every prompt has 2 stories), got {max_responses}")
    if not 2.0 <= mean_responses <= max_responses:
        raise ValueError(f"mean_responses must be in [2, max_responses={max_responses}], got {mean_responses}")
    if not 0.0 <= junk_rate < 1.0:
        raise ValueError(f"junk_rate must be in [0, 1), got {junk_rate}")
    n_combinations = len(_NAMES) * len(_PLACES) * len(_OBJECTS)
    if n_prompts > n_combinations // 2:
        raise ValueError(f"n_prompts={n_prompts} exceeds what the element pools support ({n_combinations // 2})")

    rng = np.random.default_rng(seed)
    names = tuple(_NAMES)
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
            _PLACES[int(rng.integers(len(_PLACES)))],
            _OBJECTS[int(rng.integers(len(_OBJECTS)))],
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
                body = _write_story(rng, elements, archetype, style)
                latent = ARCHETYPE_QUALITY[archetype] + STYLE_QUALITY[style] + float(rng.normal(0.0, QUALITY_NOISE_SD))
                log_votes = UPVOTE_BASE + exposure + UPVOTE_SLOPE * latent + float(rng.normal(0.0, UPVOTE_NOISE_SD))
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


# --------------------------------------------------------------------------- detectors


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def detect_archetype(text: str) -> str:
    """The archetype whose lexicon `text` hits most (word tokens, case-insensitive).

    Works on any text. Ties between the top archetypes, or no hit at all, give "none".
    """
    counts = dict.fromkeys(ARCHETYPES, 0)
    for word in _words(text):
        for archetype in ARCHETYPES:
            if word in _GRAMMAR[archetype].lexicon:
                counts[archetype] += 1
    best = max(counts.values())
    if best == 0:
        return NONE
    winners = [a for a, c in counts.items() if c == best]
    return winners[0] if len(winners) == 1 else NONE


def _is_past(word: str) -> bool:
    """A lowercase word is a past-tense form: a known one or a regular -ed form."""
    return word in _PAST_FORMS or (len(word) > 4 and word.endswith("ed") and word not in _NOT_PAST_ED)


def style_features(text: str) -> dict[str, float | str]:
    """The features `detect_style` decides on, for inspection.

    person: "first"/"third"/"" (undecided), from I/me/my vs he/she/him/her/his counts
    plus named subjects (a capitalised word before a verb form), outside quotes (one side
    needs >= 2 hits and twice the other's); tense: "past" /
    "present" / "" from known past forms and -ed words vs known present forms and
    "I <lemma>" outside quotes (same rule); dialogue: share of words inside double
    quotes (>= 0.05 counts as dialogue); mean_sentence: mean words per sentence; rhythm:
    "terse" (< 7) / "medium" / "flowing" (> 16).
    """
    norm = text.replace("\u201c", '"').replace("\u201d", '"')
    quoted = " ".join(q for q in _QUOTE_RE.findall(norm))
    narration = _QUOTE_RE.sub(" ", norm)
    all_words = _words(norm)
    words = _words(narration)
    first = sum(w in _FIRST for w in words)
    third = sum(w in _THIRD for w in words)
    past = present = 0
    for i, w in enumerate(words):
        if _is_past(w):
            past += 1
        elif w in _PRESENT_FORMS or (i > 0 and words[i - 1] == "i" and w in _LEMMAS):
            present += 1
    # A capitalised word (not "I") right before a verb form is a named subject: third
    # person narration ("Mara found ...", "Nobody catches ...").
    cased = _CASED_WORD_RE.findall(narration)
    third += sum(
        1
        for w, nxt in zip(cased, cased[1:])
        if w[0].isupper() and w != "I" and (_is_past(nxt.lower()) or nxt.lower() in _PRESENT_FORMS)
    )
    sentences = [s for s in (m.group() for m in _SENTENCE_RE.finditer(norm)) if _WORD_RE.search(s.lower())]
    mean_sentence = len(all_words) / len(sentences) if sentences else 0.0

    def decide(a: int, b: int, label_a: str, label_b: str) -> str:
        if a >= 2 and a >= 2 * b:
            return label_a
        if b >= 2 and b >= 2 * a:
            return label_b
        return ""

    if mean_sentence < _TERSE_MAX_SENTENCE:
        rhythm = "terse"
    elif mean_sentence > _FLOWING_MIN_SENTENCE:
        rhythm = "flowing"
    else:
        rhythm = "medium"
    return {
        "n_words": float(len(all_words)),
        "person": decide(first, third, "first", "third"),
        "tense": decide(past, present, "past", "present"),
        "dialogue": len(_words(quoted)) / max(len(all_words), 1),
        "mean_sentence": mean_sentence,
        "rhythm": rhythm,
    }


def detect_style(text: str) -> str:
    """The narrative style of `text`, from person, tense, dialogue and rhythm features.

    The features (see `style_features`) are matched against each style's profile
    (person, tense, dialogue, rhythm): an exact match wins; otherwise a unique nearest
    profile one feature away wins. "none" when the text is short (< 12 words), person or
    tense is undecidable, or the nearest profile is ambiguous or two features away.
    """
    f = style_features(text)
    if f["n_words"] < _MIN_STYLE_WORDS or not f["person"] or not f["tense"]:
        return NONE
    observed = (1 if f["person"] == "first" else 3, f["tense"], f["dialogue"] >= _DIALOGUE_MIN_SHARE, f["rhythm"])
    distances = {
        name: sum(
            w * (a != b) for w, a, b in zip(_FEATURE_WEIGHTS, observed, (s.person, s.tense, s.dialogue, s.rhythm))
        )
        for name, s in _STYLE_SPECS.items()
    }
    best = min(distances.values())
    winners = [name for name, d in distances.items() if d == best]
    if best > 1 or len(winners) != 1:
        return NONE
    return winners[0]


def on_topic(text: str, elements: list[str]) -> bool:
    """True when `text` mentions every element (case-insensitive, whole words)."""
    return all(re.search(rf"\b{re.escape(str(e))}\b", text, flags=re.IGNORECASE) for e in elements)


def true_quality(text: str, elements: list[str]) -> float:
    """Noise-free latent quality of any text for a prompt with these `elements`.

    ``ARCHETYPE_QUALITY[a] + STYLE_QUALITY[s] - QUALITY_PENALTY * (off + no_a + no_s)``
    with a = `detect_archetype(text)`, s = `detect_style(text)`, `off` = 1 when
    `on_topic(text, elements)` is False, `no_a` = 1 when a is "none" (its term is then 0),
    `no_s` likewise for the style; QUALITY_PENALTY = 1.0. On the generator's own stories
    this equals the latent quality without its noise term.
    """
    archetype = detect_archetype(text)
    style = detect_style(text)
    failures = int(not on_topic(text, elements)) + int(archetype == NONE) + int(style == NONE)
    quality = ARCHETYPE_QUALITY.get(archetype, 0.0) + STYLE_QUALITY.get(style, 0.0)
    return float(quality - QUALITY_PENALTY * failures)
