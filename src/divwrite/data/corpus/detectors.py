"""The built-in corpus's detectors: archetype, style, topicality and true quality of any text.

What evaluation uses as ground truth (`divwrite.evaluation.scoring`): `detect_archetype`
(argmax of lexicon hits), `detect_style` (person, tense, dialogue share and sentence
length matched against the style profiles; `style_features` shows them), `on_topic` and
`true_quality` (noise-free quality, penalised when off-topic or unrecognisable). They work
on any text, generated text included, and recover the truth on the generator's own
stories (>= 99.9 % for both detectors; see tests/test_corpus.py). They read the grammar's
tables (lexicons, style profiles, verb forms, quality effects) and never import the
generator.
"""

from __future__ import annotations

import re

from divwrite.data.corpus.grammar import ARCHETYPE_QUALITY, ARCHETYPES, GRAMMAR, NONE, STYLE_QUALITY, STYLE_SPECS, VERBS

# Subtracted by `true_quality` for each failure: off-topic, no archetype, no style. As
# large as the whole spread of archetype effects, so a story that ignores its prompt or
# has no recognisable plot never ties with a proper one of the worst archetype.
QUALITY_PENALTY = 1.0

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
_PAST_FORMS = frozenset({p for lemma, (s, p) in VERBS.items() if p != lemma and p != s} | _COMMON_PAST)
_PRESENT_FORMS = frozenset({s for lemma, (s, p) in VERBS.items() if s != p} | _COMMON_PRESENT)
_LEMMAS = frozenset(VERBS) | {"am"}
_TERSE_MAX_SENTENCE = 7.0  # mean words per sentence below this: terse
_FLOWING_MIN_SENTENCE = 16.0  # above this: flowing
_DIALOGUE_MIN_SHARE = 0.05  # share of words inside quotes
_MIN_STYLE_WORDS = 12
# Mismatch costs in `detect_style`: grammar (person, tense) is decisive, surface features
# (dialogue share, sentence length) may be off by one.
_FEATURE_WEIGHTS = (2, 2, 1, 1)


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
            if word in GRAMMAR[archetype].lexicon:
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
        for name, s in STYLE_SPECS.items()
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
