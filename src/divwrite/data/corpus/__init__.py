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
    Latent quality = ARCHETYPE_QUALITY[a] + STYLE_QUALITY[s] + N(0, `quality_noise_sd`).
    Quality concentrates where writers already crowd: the most popular archetype (quest,
    0.5) and style (classic, 0.3) are the best, as the familiar crowd-pleaser is on Reddit,
    so training toward quality narrows the output (the premise P5: preference tuning
    narrows). Several rare choices come close (homecoming 0.45, mystery 0.4, revenge 0.3;
    lyrical 0.25, confessional 0.2): rare good writing exists for deviation weighting to
    find, with no rare runaway best (with one, deviation weighting can collapse onto it:
    findings.md). One popular choice is mediocre (romance 0.0; dialogue 0.0) and one rare
    choice on each axis is the worst (heist -0.3, terse -0.2), so rarity alone is not
    rewarded. (Until Dec 2026 the popular choices were mediocre and the rare ones best;
    preference tuning then spread the output over the rare plots instead of narrowing it:
    docs/calibration.md.)

Upvotes
    Heavy-tailed and driven by latent quality: per comment,
    ``floor(exp(1.4 + e_p + 1.1 * q + N(0, upvote_noise_sd)))`` with a per-thread exposure
    e_p ~ N(0, 0.5) (some threads are seen by more readers). Non-negative integers; at the
    defaults (noise 0.2, 500 prompts) median 6, the largest ~80, about a third of the
    within-prompt pairs differ by >= 5, and log-upvotes correlate ~0.6 with latent quality
    across threads (the exposure is most of the rest; within a thread it cancels). Upvotes
    depend on nothing but quality, thread exposure and noise.

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

Modules
    `grammar`: the truth tables both sides share (archetypes, styles, their quality
    effects, "none"), the element pools, the verb table, the styles and the realiser that
    writes a story; `plots`: one module per archetype (lexicon, beats, dialogue);
    `generator`: popularity, prompts, junk comments, upvotes, `generate_corpus` and
    `Corpus`; `detectors`: what evaluation uses as ground truth. The detectors import the
    grammar's tables, never the generator.
"""
