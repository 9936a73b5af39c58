"""The quest archetype of the built-in corpus: a journey north with a sword and a map, a dragon
on the summit, the relic of a prophecy brought home to the kingdom.

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
    "quest journey map maps mountain mountains summit dragon dragons sword prophecy kingdom "
    "trail relic oracle peaks ridge pilgrim wilderness beast".split()
)
SLOTS: tuple[tuple[Beat, ...], ...] = (
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
)
DIALOGUE: tuple[tuple[str, str], ...] = (
    ("the old oracle", "The map says the summit is three days away"),
    ("H", "Every prophecy has a price"),
    ("H", "We climb the ridge at dawn"),
    ("the old oracle", "The dragon sleeps on the summit"),
    ("H", "This journey will take everything we have"),
    ("the old oracle", "Follow the trail north and never stop"),
    ("H", "Is the kingdom worth the journey?"),
)
