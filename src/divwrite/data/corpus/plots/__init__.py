"""The built-in corpus's plot archetypes, one module each: quest, romance, mystery, heist,
revenge, homecoming.

Each module holds content only: `LEXICON` (the archetype's own words), `SLOTS` (five plot
slots with three beat variants each) and `DIALOGUE` (the lines the dialogue style quotes).
`divwrite.data.corpus.grammar` assembles them into `GRAMMAR`, the one table the realiser
writes from and the detectors count lexicon hits in.
"""
