"""The heist archetype of the built-in corpus: a vault watched and planned for, a crew and
blueprints, an alarm, the vault cracked, the getaway.

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
    "heist vault vaults crew loot alarm guard guards blueprints getaway diamond diamonds "
    "combination tunnel lookout codes disguise steal steals stole stolen crack cracks "
    "cracked van".split()
)
SLOTS: tuple[tuple[Beat, ...], ...] = (
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
)
DIALOGUE: tuple[tuple[str, str], ...] = (
    ("H", "The vault opens at midnight"),
    ("the lookout", "Nobody touches the alarm"),
    ("H", "Stick to the blueprints and we all get paid"),
    ("the lookout", "Two minutes until the guards come back"),
    ("H", "This is my last heist"),
    ("the lookout", "Is the getaway van ready?"),
)
