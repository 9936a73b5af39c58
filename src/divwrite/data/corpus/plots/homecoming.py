"""The homecoming archetype of the built-in corpus: a return to the village of one's childhood,
family keepsakes, an old silence, a reunion, staying home.

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
    "home homecoming mother father village childhood porch family brother sister kitchen "
    "hometown attic supper memories hug hugs hugged return returns returned bedroom".split()
)
SLOTS: tuple[tuple[Beat, ...], ...] = (
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
)
DIALOGUE: tuple[tuple[str, str], ...] = (
    ("{poss} mother", "Welcome home"),
    ("{poss} father", "You look just like your mother"),
    ("{poss} mother", "Supper is at six, like always"),
    ("{poss} brother", "We kept your bedroom the way you left it"),
    ("{poss} mother", "The whole village missed you"),
    ("H", "Is the porch swing still there?"),
)
