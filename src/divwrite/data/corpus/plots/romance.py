"""The romance archetype of the built-in corpus: a stranger met at the place, a love token or
letter, a rival suitor, a confession, a dance, a wedding.

Content only: `LEXICON`, words that no other archetype, element pool or style uses (what
`detectors.detect_archetype` counts); `SLOTS`, the five plot slots (opening at the place,
inciting beat with the object, complication, climax, resolution) with three beat variants
each, every beat a tuple of clauses (`grammar.Clause`); `DIALOGUE`, (speaker, line) pairs
that the dialogue style quotes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from divwrite.data.corpus.grammar import Beat

LEXICON = frozenset(
    "love loves loved lover heart hearts kiss kissed kisses sweetheart dance danced dances "
    "rose roses blush blushes blushed smile smiles smiled wedding suitor marry marries married "
    "tender cheek flirt".split()
)
SLOTS: tuple[tuple[Beat, ...], ...] = (
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
)
DIALOGUE: tuple[tuple[str, str], ...] = (
    ("the stranger", "I think I am falling in love with you"),
    ("H", "Will you dance with me?"),
    ("H", "My heart has been yours since the first day"),
    ("the stranger", "Stay with me tonight, sweetheart"),
    ("H", "Every love letter was for you"),
    ("the stranger", "I saved you the last dance"),
)
