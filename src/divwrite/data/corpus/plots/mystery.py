"""The mystery archetype of the built-in corpus: a disappearance or a body, clues and
fingerprints, suspects with alibis, the culprit found and the case closed.

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
    "mystery clue clues detective footprints suspect suspects alibi alibis riddle culprit "
    "witness evidence puzzle case inspector fingerprints motive crime murder investigate "
    "investigates investigated solve solves solved solution disappearance body examine "
    "examines examined".split()
)
SLOTS: tuple[tuple[Beat, ...], ...] = (
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
)
DIALOGUE: tuple[tuple[str, str], ...] = (
    ("H", "The clues never lie"),
    ("the inspector", "Where were you on the night of the murder?"),
    ("H", "Somebody in this room is the culprit"),
    ("the inspector", "Every suspect has a motive"),
    ("H", "Show me the evidence"),
    ("the witness", "The footprints lead to the cellar"),
)
