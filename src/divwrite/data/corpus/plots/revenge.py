"""The revenge archetype of the built-in corpus: an old grudge and a scar, a hidden dagger, the
traitor hunted and cornered, vengeance taken or spared.

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
    "revenge vengeance traitor traitors enemy enemies betrayal betray betrayed grudge scar "
    "blood debt dagger fury justice ruin ruins hatred avenge avenged sharpen sharpens "
    "sharpened blades swear swears swore".split()
)
SLOTS: tuple[tuple[Beat, ...], ...] = (
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
)
DIALOGUE: tuple[tuple[str, str], ...] = (
    ("H", "You betrayed me and now you will pay"),
    ("H", "I have waited ten winters for this"),
    ("the traitor", "Revenge is all you have left"),
    ("H", "Blood pays for blood"),
    ("H", "Tell the traitor I am coming"),
    ("the enemy", "There is no justice, only vengeance"),
)
