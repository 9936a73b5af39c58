"""Deviation weights (METHOD.md step 4) and DivPO pairs (METHOD.md step 5).

A response's deviation is its mean cosine distance to the other responses of its prompt;
rare responses deviate most. Per prompt, deviations of each embedder are min-max mapped
to [-1, 1], combined across embedders by a geometric mean on [0, 1], and turned into
weights with mean 1 over the prompt's responses. Each pair carries the weights of its
chosen and rejected response for three embedder sets: semantic only (`sem`), style only
(`sty`) and both (`both`), and for the quality-gated variant (`qg`, docs/weighting.md: not in
the paper), which rewards only the responses of the prompt's better half for deviating, and
measures their deviation from the better half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from divwrite.core.records import RESPONSE_COLUMNS, prompt_rng
from divwrite.data.pairing import pair_table, prompt_slices, sorted_responses
from divwrite.weighting.embedders import EMBEDDER_KEYS, Embedder

# Weight variant -> the embedders (the set E of METHOD.md step 4) it combines.
VARIANTS: dict[str, tuple[str, ...]] = {"sem": ("sem",), "sty": ("sty",), "both": ("sem", "sty")}
WEIGHT_COLUMNS = [f"w_{side}_{v}" for v in VARIANTS for side in ("chosen", "rejected")]
DEVIATION_COLUMNS = [f"dev_chosen_{k}" for k in EMBEDDER_KEYS]
# The quality-gated variant (docs/weighting.md) combines both embedders; its columns come
# after all of the above, so the paper's columns keep their place.
QG_EMBEDDERS: tuple[str, ...] = EMBEDDER_KEYS
QG_COLUMNS = ["w_chosen_qg", "w_rejected_qg"]

# Values whose spread is below this share of their scale count as "all equal": float
# noise must not be stretched to [-1, 1] (two responses have equal deviations in exact
# arithmetic, but not always in floating point).
_REL_TOL = 1e-9


def _all_equal(x: np.ndarray) -> bool:
    return x.size == 0 or float(x.max() - x.min()) <= _REL_TOL * max(1.0, float(np.abs(x).max()))


def deviation(emb: np.ndarray) -> np.ndarray:
    """Deviation, METHOD.md step 4: `d(i) = mean over j != i of (1 - cos(e_i, e_j))`.

    `emb` has one row per response of one prompt (the set R). Rows are (re)normalised,
    so any embeddings work; computed in float64 from the sum of the unit vectors, in
    O(n * dim). A single response has deviation 0.
    """
    e = np.asarray(emb, dtype=np.float64)
    n = len(e)
    if n <= 1:
        return np.zeros(n)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    # sum_{j != i} cos(e_i, e_j) = e_i . (sum_j e_j) - e_i . e_i
    others = e @ e.sum(axis=0) - np.einsum("ij,ij->i", e, e)
    return 1.0 - others / (n - 1)


def minmax_signed(d: np.ndarray) -> np.ndarray:
    """Min-max map to [-1, 1] over R, METHOD.md step 4: `2 (d - min) / (max - min) - 1`;
    all equal (up to float noise) -> 0."""
    d = np.asarray(d, dtype=np.float64)
    if _all_equal(d):
        return np.zeros_like(d)
    return 2.0 * (d - d.min()) / (d.max() - d.min()) - 1.0


def combine_geometric(ds: Sequence[np.ndarray]) -> np.ndarray:
    """Combination of embedders, METHOD.md step 4: geometric mean on [0, 1],
    `s(i) = 2 * prod_e((d_e(i) + 1) / 2) ** (1 / |E|) - 1`, for min-max mapped `d_e`.

    One embedder returns its `d` unchanged. A response that is the least deviating under
    any embedder (`d_e = -1`) gets `s = -1`.
    """
    if len(ds) == 0:
        raise ValueError("combine_geometric needs at least one deviation array")
    stacked = np.stack([np.asarray(d, dtype=np.float64) for d in ds])
    unit = np.clip((stacked + 1.0) / 2.0, 0.0, 1.0)
    return 2.0 * np.prod(unit, axis=0) ** (1.0 / len(ds)) - 1.0


def deviation_weights(s: np.ndarray, min_weight: float = 0.0) -> np.ndarray:
    """Deviation weight, METHOD.md step 4: `w(i) = (s(i) + 1) / mean_j(s(j) + 1)`, mean 1
    over R (all equal -> 1); then the "minimum delta" ablation `w <- max(w, min_weight)`
    when `min_weight > 0` (the mean is then above 1)."""
    x = np.asarray(s, dtype=np.float64) + 1.0
    w = np.ones_like(x) if _all_equal(x) else x / x.mean()
    if min_weight > 0:
        w = np.maximum(w, min_weight)
    return w


def good_half(scores: np.ndarray) -> np.ndarray:
    """The good half G of R, docs/weighting.md: `score_j >= median_k score_k` (ties included;
    never empty for a non-empty R). A boolean mask over R."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    if not np.isfinite(x).all():
        raise ValueError("good_half: scores must be finite")
    return x >= np.median(x)


def deviation_from(emb: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Deviation from a subset G of R, docs/weighting.md:
    `g(i) = mean over j in G, j != i of (1 - cos(e_i, e_j))`, for every row i of `emb` (R);
    where `G` minus i is empty, `deviation(emb)[i]` (METHOD.md's `d(i)` over R). Rows are
    (re)normalised; O(n * dim) in float64, as `deviation`."""
    e = np.asarray(emb, dtype=np.float64)
    inside = np.asarray(members, dtype=bool)
    if len(e) == 0:
        return np.zeros(0)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    # sum_{j in G, j != i} cos(e_i, e_j) = e_i . (sum_{j in G} e_j) - [i in G] e_i . e_i
    others = e @ e[inside].sum(axis=0) - inside * np.einsum("ij,ij->i", e, e)
    count = inside.sum() - inside.astype(np.int64)
    g = deviation(e)  # the fallback where G minus i is empty
    has = count > 0
    g[has] = 1.0 - others[has] / count[has]
    return g


def quality_gated_weights(embs: Sequence[np.ndarray], scores: np.ndarray, min_weight: float = 0.0) -> np.ndarray:
    """Quality-gated deviation weight, docs/weighting.md (a variant, not in the paper).

    For one prompt's responses R (rows of each array in `embs`, one array per embedder e of
    the set E; `scores` their transformed scores, METHOD.md step 1):
    `G = {j : score_j >= median_k score_k}` (`good_half`);
    `g_e(i) = mean over j in G, j != i of (1 - cos(e_i, e_j))` (`deviation_from`);
    `g_e` min-max mapped over R to [-1, 1] (`minmax_signed`);
    `s(i) = 2 * prod_e((g_e(i) + 1) / 2) ** (1/|E|) - 1` (`combine_geometric`), `u_i = (s(i) + 1) / 2`;
    `w(i) = (1 + [i in G] u_i) / mean_{j in R}(1 + [j in G] u_j)`, then `w <- max(w, min_weight)`
    when `min_weight > 0`.
    Mean 1 over R (before the floor; all equal -> 1), every weight in [1/2, 2] and never 0; a
    response below the median gets the base weight `1 / mean`, one of G at most twice it.
    """
    if len(embs) == 0:
        raise ValueError("quality_gated_weights needs at least one embedding array")
    good = good_half(scores)
    mapped = []
    for emb in embs:
        if len(emb) != len(good):
            raise ValueError(f"quality_gated_weights: {len(emb)} embeddings for {len(good)} scores")
        mapped.append(minmax_signed(deviation_from(emb, good)))
    u = (combine_geometric(mapped) + 1.0) / 2.0
    # deviation_weights(b) = (b + 1) / mean(b + 1) with the same all-equal rule and floor
    return deviation_weights(np.where(good, u, 0.0), min_weight)


def select_pairs(
    pairs_of_prompt: pd.DataFrame, max_responses: int = 0, high_quality_first: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """The set R of METHOD.md step 4 for one prompt, and the pairs kept.

    Pairs are taken in draw order (`pair_index`), or, with `high_quality_first`, by
    chosen upvotes, highest first (ties in draw order). They are kept while the responses
    they bring stay within `max_responses` (0 = no cap); the first pair that would exceed
    it and all after it are dropped. Returns the kept pairs (in that order) and R, the
    ids of their responses in order of first appearance (chosen before rejected).
    """
    if max_responses < 0:
        raise ValueError(f"max_responses must be >= 0, got {max_responses}")
    ordered = pairs_of_prompt.sort_values("pair_index", kind="stable")
    if high_quality_first:
        ordered = ordered.sort_values("chosen_upvotes", ascending=False, kind="stable")
    responses: dict[str, None] = {}
    n_kept = 0
    for chosen_id, rejected_id in zip(ordered["chosen_id"], ordered["rejected_id"]):
        added = [r for r in dict.fromkeys((chosen_id, rejected_id)) if r not in responses]
        if max_responses and len(responses) + len(added) > max_responses:
            break
        responses.update(dict.fromkeys(added))
        n_kept += 1
    return ordered.iloc[:n_kept], list(responses)


def _embed_unique(texts: Sequence[str], embedder: Embedder, batch_size: int) -> tuple[np.ndarray, dict[str, int]]:
    """Embeddings of the distinct `texts`, one batched call, and each text's row."""
    unique = list(dict.fromkeys(texts))
    return embedder.encode(unique, batch_size=batch_size), {t: i for i, t in enumerate(unique)}


def weight_pairs(
    pairs_df: pd.DataFrame,
    embedders: Mapping[str, Embedder],
    max_responses: int = 0,
    min_weight: float = 0.0,
    high_quality_first: bool = False,
    batch_size: int = 128,
) -> pd.DataFrame:
    """METHOD.md step 4 for every prompt: the kept pairs with their deviation weights.

    `embedders` maps `"sem"` and `"sty"` to embedders. Every distinct text is embedded
    once per embedder, in batches of `batch_size` across all prompts. Per prompt, R and
    the kept pairs come from `select_pairs`; for each embedder, `deviation` over R then
    `minmax_signed`; for each variant (`sem`: E = {sem}, `sty`: E = {sty}, `both`:
    E = {sem, sty}), `combine_geometric` then `deviation_weights`; and
    `quality_gated_weights` (E = {sem, sty}) with the responses' `chosen_score` /
    `rejected_score`.

    Output: the kept pairs (all input columns), sorted by prompt id and `pair_index`,
    plus `w_chosen_<v>`, `w_rejected_<v>` for v in sem, sty, both, the raw
    deviations `dev_chosen_sem`, `dev_chosen_sty` of the chosen responses, then
    `w_chosen_qg`, `w_rejected_qg`.
    """
    missing = [k for k in EMBEDDER_KEYS if k not in embedders]
    if missing:
        raise ValueError(f"weight_pairs: embedders lacks keys {missing} (needs {list(EMBEDDER_KEYS)})")
    groups = [
        (pid, *select_pairs(group, max_responses, high_quality_first))
        for pid, group in pairs_df.groupby("prompt_id", sort=True)
    ]
    if not groups:
        new = WEIGHT_COLUMNS + DEVIATION_COLUMNS + QG_COLUMNS
        return pairs_df.assign(**{c: pd.Series(dtype=np.float64) for c in new})
    out = pd.concat([kept for _, kept, _ in groups]).sort_values(["prompt_id", "pair_index"], kind="stable")
    out = out.reset_index(drop=True)

    # Responses are keyed by (prompt id, response id): ids need not be unique across prompts.
    text_of, score_of = {}, {}
    for side in ("chosen", "rejected"):
        text_of.update(zip(zip(out["prompt_id"], out[f"{side}_id"]), out[side]))
        score_of.update(zip(zip(out["prompt_id"], out[f"{side}_id"]), out[f"{side}_score"]))
    keys = [(pid, rid) for pid, _, ids in groups for rid in ids]
    embedded = {k: _embed_unique([text_of[key] for key in keys], embedders[k], batch_size) for k in EMBEDDER_KEYS}

    weight: dict[str, dict[tuple[str, str], float]] = {v: {} for v in (*VARIANTS, "qg")}
    raw: dict[str, dict[tuple[str, str], float]] = {k: {} for k in EMBEDDER_KEYS}
    for pid, _, ids in groups:
        r = [(pid, rid) for rid in ids]
        vectors, mapped = {}, {}
        for k in EMBEDDER_KEYS:
            emb, row = embedded[k]
            vectors[k] = emb[[row[text_of[key]] for key in r]]
            d = deviation(vectors[k])
            raw[k].update(zip(r, d.tolist()))
            mapped[k] = minmax_signed(d)
        for v, embedder_set in VARIANTS.items():
            w = deviation_weights(combine_geometric([mapped[k] for k in embedder_set]), min_weight)
            weight[v].update(zip(r, w.tolist()))
        scores = np.array([score_of[key] for key in r], dtype=np.float64)
        w = quality_gated_weights([vectors[k] for k in QG_EMBEDDERS], scores, min_weight)
        weight["qg"].update(zip(r, w.tolist()))

    chosen = list(zip(out["prompt_id"], out["chosen_id"]))
    rejected = list(zip(out["prompt_id"], out["rejected_id"]))
    for v in VARIANTS:
        out[f"w_chosen_{v}"] = np.array([weight[v][key] for key in chosen], dtype=np.float64)
        out[f"w_rejected_{v}"] = np.array([weight[v][key] for key in rejected], dtype=np.float64)
    for k in EMBEDDER_KEYS:
        out[f"dev_chosen_{k}"] = np.array([raw[k][key] for key in chosen], dtype=np.float64)
    out["w_chosen_qg"] = np.array([weight["qg"][key] for key in chosen], dtype=np.float64)
    out["w_rejected_qg"] = np.array([weight["qg"][key] for key in rejected], dtype=np.float64)
    return out


def responses_in_pairs(pairs_df: pd.DataFrame) -> pd.DataFrame:
    """The responses that appear in a pairs table (the responses "used in post-training"),
    one row each, columns `RESPONSE_COLUMNS`, sorted by prompt id, then first appearance."""
    sides = []
    for side in ("chosen", "rejected"):
        sides.append(
            pd.DataFrame(
                {
                    "prompt_id": pairs_df["prompt_id"],
                    "prompt": pairs_df["prompt"],
                    "response_id": pairs_df[f"{side}_id"],
                    "response": pairs_df[side],
                    "upvotes": pairs_df[f"{side}_upvotes"],
                    "score": pairs_df[f"{side}_score"],
                    "_order": 2 * np.arange(len(pairs_df)) + (side == "rejected"),
                }
            )
        )
    long = pd.concat(sides).sort_values("_order", kind="stable").drop_duplicates(["prompt_id", "response_id"])
    long = long.sort_values("prompt_id", kind="stable").drop(columns="_order").reset_index(drop=True)
    return long[RESPONSE_COLUMNS]


def divpo_pairs(
    responses: pd.DataFrame,
    embedder: Embedder,
    *,
    p: int = 2,
    rho: float = 25.0,
    seed: int = 42,
    batch_size: int = 128,
) -> pd.DataFrame:
    """DivPO pairs, METHOD.md step 5 (Lanchantin et al. 2025), as a `PAIR_COLUMNS` frame.

    Per prompt of `responses` (the responses used in post-training, e.g.
    `responses_in_pairs(pairs)`), with n responses: `k = max(p, floor(n * rho / 100))`,
    capped at `n // 2`; the high set is the top k by upvotes, the low set the bottom k
    (ties in table order). Within the high set take the `min(p, k)` responses with the
    largest `deviation` computed within that set; within the low set the `min(p, k)` with
    the smallest; pair them in a random matching (`prompt_rng(seed, prompt_id)`), the
    high one chosen. A pair whose two responses have equal upvotes is dropped (it states
    no preference; possible when more than half the responses tie). The distinct texts of
    the high and low sets are embedded once, in one batched call.
    """
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    d = sorted_responses(responses, "divpo_pairs")
    upvotes = d["upvotes"].to_numpy(dtype=np.float64)
    pids = d["prompt_id"].to_numpy()
    sets = []  # (prompt id, high set rows, low set rows), rows into `d`
    for start, stop in prompt_slices(pids):
        n = stop - start
        k = min(max(p, int(n * rho / 100)), n // 2)
        if k >= 1:
            by_upvotes = start + np.argsort(-upvotes[start:stop], kind="stable")
            sets.append((str(pids[start]), by_upvotes[:k], by_upvotes[n - k :]))
    texts = d["response"].tolist()
    needed = [texts[i] for _, high, low in sets for i in (*high, *low)]
    emb, row = _embed_unique(needed, embedder, batch_size)

    def embeddings(rows: np.ndarray) -> np.ndarray:
        return emb[[row[texts[i]] for i in rows]]

    chosen_rows: list[int] = []
    rejected_rows: list[int] = []
    pair_index: list[int] = []
    for pid, high, low in sets:
        m = min(p, len(high))
        high_pick = high[np.argsort(-deviation(embeddings(high)), kind="stable")[:m]]
        low_pick = low[np.argsort(deviation(embeddings(low)), kind="stable")[:m]]
        low_pick = low_pick[prompt_rng(seed, pid).permutation(m)]
        j = 0
        for c, r in zip(high_pick.tolist(), low_pick.tolist()):
            if upvotes[c] > upvotes[r]:
                chosen_rows.append(c)
                rejected_rows.append(r)
                pair_index.append(j)
                j += 1
    return pair_table(d, chosen_rows, rejected_rows, pair_index)
