"""The built-in corpus's generative grammar: the vocabulary, the archetypes, the styles,
and the realiser that writes a story.

Shared by both sides of the corpus: the generator (`generator`) writes stories with it, and
the detectors (`detectors`, the ground truth of evaluation) read the same tables back: the
archetype lexicons, the style profiles and the verb forms. So the truth tables that both
need live here too: the archetype and style names, their quality effects, and `NONE`.

Clauses
    A beat is content: clauses of subject + verb lemma + complement (+ optional non-finite
    tail), with no tense or person fixed. Each archetype's lexicon, five plot slots (three
    beat variants each) and dialogue lines are in `plots/<archetype>.py`; `GRAMMAR` puts
    them together.

Styles
    A style (`STYLE_SPECS`) is a point in (person, tense, dialogue, rhythm). `write_story`
    realises an archetype's clauses through a conjugation table (person x tense) and the
    style's rhythm (how clauses are trimmed and joined), so every archetype can be written
    in every style. The package docstring (`divwrite.data.corpus`) has the whole design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from divwrite.data.corpus.plots import heist, homecoming, mystery, quest, revenge, romance

NONE = "none"

# --------------------------------------------------------------------------- the truth tables

ARCHETYPES: tuple[str, ...] = ("quest", "romance", "mystery", "heist", "revenge", "homecoming")
STYLES: tuple[str, ...] = ("classic", "dialogue", "confessional", "terse", "lyrical")

# Where quality concentrates (README "The built-in corpus"): the most popular plot and voice
# are the crowd-pleasers, several rare ones come close, one popular one is mediocre and one
# rare one on each axis is the worst. Quality-seeking training then narrows the output toward
# the popular best (premise P5), while rare good writing exists for deviation weighting to find.
ARCHETYPE_QUALITY: dict[str, float] = {
    "quest": 0.5,
    "romance": 0.0,
    "mystery": 0.4,
    "heist": -0.3,
    "revenge": 0.3,
    "homecoming": 0.45,
}
STYLE_QUALITY: dict[str, float] = {
    "classic": 0.3,
    "dialogue": 0.0,
    "confessional": 0.2,
    "terse": -0.2,
    "lyrical": 0.25,
}

# --------------------------------------------------------------------------- prompt elements

# name -> grammatical gender of the hero ("f"/"m"), for third-person pronouns.
NAMES: dict[str, str] = {
    "Mara": "f", "Elena": "f", "Priya": "f", "Ines": "f", "Yuki": "f", "Greta": "f",
    "Amara": "f", "Nadia": "f", "Zara": "f", "Wren": "f", "Lena": "f", "Odette": "f",
    "Rosa": "f", "Signe": "f", "Talia": "f",
    "Tobias": "m", "Silas": "m", "Jonah": "m", "Rafael": "m", "Omar": "m", "Felix": "m",
    "Lucan": "m", "Otto": "m", "Idris": "m", "Caspar": "m", "Emil": "m", "Hugo": "m",
    "Milo": "m", "Anselm": "m", "Dario": "m",
}  # fmt: skip
PLACES: tuple[str, ...] = (
    "lighthouse", "bakery", "subway", "greenhouse", "library", "circus", "monastery",
    "laundromat", "observatory", "orchard", "aquarium", "shipyard", "cathedral", "carnival",
    "vineyard", "theater", "hospital", "junkyard", "bookshop", "ferry", "marketplace",
    "windmill", "planetarium", "boathouse", "brewery", "zoo", "quarry", "railyard",
    "chapel", "bathhouse",
)  # fmt: skip
OBJECTS: tuple[str, ...] = (
    "lantern", "violin", "umbrella", "teapot", "typewriter", "pocketwatch", "kite",
    "bicycle", "mirror", "harmonica", "accordion", "telescope", "metronome", "seashell",
    "thimble", "scarf", "birdcage", "chessboard", "gramophone", "paintbrush", "snowglobe",
    "puppet", "candle", "feather", "lighter", "teacup", "postcard", "tuba", "marble",
    "bell",
)  # fmt: skip

# --------------------------------------------------------------------------- the grammar

# lemma -> (third person singular present, past). First person present is the lemma.
VERBS: dict[str, tuple[str, str]] = {
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
Clause = tuple[str, str, str, str]
Beat = tuple[Clause, ...]


@dataclass(frozen=True)
class Archetype:
    lexicon: frozenset[str]
    slots: tuple[tuple[Beat, ...], ...]  # 5 slots x variants; slot 0 uses {P}, slot 1 {O}
    dialogue: tuple[tuple[str, str], ...]  # (speaker: "H" or a noun phrase, line)


# Each archetype's content lives in plots/<archetype>.py; GRAMMAR joins them, in ARCHETYPES order.
_PLOTS = {
    "quest": quest,
    "romance": romance,
    "mystery": mystery,
    "heist": heist,
    "revenge": revenge,
    "homecoming": homecoming,
}
GRAMMAR: dict[str, Archetype] = {
    name: Archetype(lexicon=plot.LEXICON, slots=plot.SLOTS, dialogue=plot.DIALOGUE) for name, plot in _PLOTS.items()
}


# --------------------------------------------------------------------------- the styles


@dataclass(frozen=True)
class Style:
    person: int  # 1 or 3
    tense: str  # "past" | "present"
    dialogue: bool  # two quoted lines (after the object beat and after the climax)
    rhythm: str  # "terse": one short clause per sentence, tails split off as fragments;
    # "medium": one clause per sentence, some pairs joined by ", and"; "flowing": 2-3 clauses
    # per sentence joined by ", and" / ";" / ", while" / ", as", often closed by a simile
    tail_rate: float  # probability that a clause keeps its tail (terse: as a fragment)


STYLE_SPECS: dict[str, Style] = {
    "classic": Style(3, "past", False, "medium", 0.5),
    "dialogue": Style(3, "past", True, "medium", 0.2),
    "confessional": Style(1, "past", False, "medium", 0.5),
    "terse": Style(3, "present", False, "terse", 0.4),
    "lyrical": Style(1, "present", False, "flowing", 0.6),
}
# First-person naming clauses (the hero's name must appear in every story).
_NAMING: tuple[Clause, ...] = (("my name", "be", "{N}", ""), ("everyone", "call", "me {N}", ""))
# Style glue: verbless, lexicon-free.
_FRAGMENTS: tuple[str, ...] = ("Silence.", "Cold air.", "Not yet.", "Then nothing.", "A long breath.", "No way back.", "Almost.")  # fmt: skip
_SIMILES: tuple[str, ...] = (", soft as snow", ", like an old song", ", slow as honey", ", bright and strange", ", heavy with silence")  # fmt: skip
_CONNECTORS: tuple[str, ...] = (", and ", "; ", ", while ", ", as ")
_SECOND_CLAUSE_RATE = 0.6  # share of two-clause beats that keep their second clause
_MEDIUM_JOIN_RATE = 0.3
_TERSE_FRAGMENT_RATE = 0.3
_PRONOUN_RATE = 0.6  # third person: share of later hero mentions that use the pronoun

# --------------------------------------------------------------------------- realisation


def article(word: str) -> str:
    """`word` with its indefinite article: "an umbrella", "a kite"."""
    return f"an {word}" if word[0].lower() in "aeiou" else f"a {word}"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _conjugate(lemma: str, first_person: bool, tense: str) -> str:
    third, past = VERBS[lemma]
    if tense == "past":
        return past
    if first_person:
        return "am" if lemma == "be" else lemma
    return third


class _Realiser:
    """Writes one archetype's beats in one style for one prompt's elements."""

    def __init__(self, rng: np.random.Generator, elements: tuple[str, str, str], style: Style):
        self.rng = rng
        self.name, self.place, self.obj = elements
        self.style = style
        first = style.person == 1
        female = NAMES.get(self.name, "f") == "f"
        self.fields = {
            "N": self.name,
            "P": self.place,
            "O": self.obj,
            "a_O": article(self.obj),
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

    def clause(self, clause: Clause, with_tail: bool) -> tuple[str, str]:
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

    def story(self, arch: Archetype, beat_choice: list[int]) -> str:
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


def write_story(rng: np.random.Generator, elements: tuple[str, str, str], archetype: str, style: str) -> str:
    """One story: the archetype's five beats (variants drawn from `rng`) for the prompt's
    (name, place, object) `elements`, written in `style`, as one paragraph."""
    arch = GRAMMAR[archetype]
    beat_choice = [int(rng.integers(len(variants))) for variants in arch.slots]
    return _Realiser(rng, elements, STYLE_SPECS[style]).story(arch, beat_choice)
