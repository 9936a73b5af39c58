"""The paper's setup (`profiles/paper.yaml`) as a profile and a DVC experiment, checked offline.

- The profile merges cleanly over params.yaml, carries METHOD.md's settings, comments every
  value, and reaches the stages intact through `dvc exp run -S` (DVC's own override code) and
  a real queued DVC experiment.
- Its first stages run for real on a local dataset in the hub dataset's schema: a folder laid
  out like the `euclaise/WritingPrompts_preferences` repository (its card's features, a
  `data/train-*.parquet` file), which `datasets.load_dataset` reads through the very path
  `data.source: hf:<id>` takes. `ingest`, `base` and `filter` run with the paper profile in a
  scratch copy (`pipeline.prepare_smoke_copy`, then `divwrite repro filter` =
  `pipeline.run_pipeline`), overriding only what cannot work offline: `data.source` (the hub)
  and `model.base` (Llama-3.1-8B's tokenizer is gated and not on this machine: a byte-level
  BPE tokenizer without a chat template, saved like a hub checkpoint, stands in for it).
  Everything else, `filter.max_tokens: 2048` included, is the paper profile's.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import subprocess_env

from divwrite.core.params import ParamsError, deep_merge, flatten, read_params
from divwrite.core.records import prompt_id, response_id
from divwrite.data.ingest import build_prompt
from divwrite.ops.pipeline import prepare_smoke_copy, profile_params
from divwrite.ops.profiles import (
    check_round_trip,
    exp_run_command,
    load_profile,
    profile_overrides,
    run_profile_experiment,
    stage_view,
)
from divwrite.training.tokenizer import (
    FALLBACK_CHAT_TEMPLATE,
    chat_messages,
    ensure_chat_template,
    load_tokenizer,
    train_bpe_tokenizer,
)

REPO = Path(__file__).resolve().parents[1]
HUB_CARD = REPO / "tests" / "data" / "hub_schema" / "README.md"
MAX_TOKENS = 2048

# The features of euclaise/WritingPrompts_preferences (its dataset card, revision 6f0b721).
HUB_FEATURES = {
    "post_text": "string",
    "post_title": "string",
    "post_scores": "int64",
    "comment_texts": ["string"],
    "comment_scores": ["int64"],
    "comment_times": ["string"],
}

# The paper's settings (../shared/paper/METHOD.md) that the profile must carry.
METHOD_SETTINGS = {
    "data.source": "hf:euclaise/WritingPrompts_preferences",
    "data.layout": "per_prompt",
    "data_seed": 42,
    "ingest.test_fraction": 0.1,
    "ingest.transform_iterations": 100,
    "filter.max_tokens": 2048,
    "filter.min_responses": 2,
    "pair.gap": 5,
    "deviate.semantic_embedder": "jinaai/jina-embeddings-v3",
    "deviate.style_embedder": "AnnaWegmann/Style-Embedding",
    "divpo.rho": 25,
    "divpo.pairs_per_prompt": 2,
    "model.base": "meta-llama/Llama-3.1-8B",
    "model.lora.r": 128,
    "model.lora.alpha": 256,
    "sft.epochs": 1,
    "sft.learning_rate": 3e-5,
    "dpo.beta": 0.1,
    "dpo.learning_rate": 5e-6,
    "dpo.epochs": 3,
    "dpo.batch_size": 2,
    "orpo.beta": 0.1,
    "reward.model": "google/gemma-2-2b",
    "generate.n_samples": 4,
    "generate.temperature": 1.0,
    "generate.top_k": 50,
    "generate.top_p": 0.95,
    "generate.repetition_penalty": 1.1,
    "evaluate.max_prompts": 1000,
}

_ROUND_TRIP_FIX = (
    "DVC writes 5e-06 for the paper's learning rate and PyYAML reads it as text: "
    "divwrite.core.params.read_params needs the YAML 1.2 float resolver (see profiles.check_round_trip)"
)


def _clean_env(**extra: str) -> dict[str, str]:
    return subprocess_env(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **extra)


# ------------------------------------------------------------------ the profile itself


def test_paper_profile_merges_cleanly_over_params():
    override = load_profile(REPO, "paper")  # raises on any key the schema lacks or any wrong type
    params = read_params(REPO / "params.yaml")
    flat_params, flat_override = flatten(params), flatten(override)
    assert flat_override and set(flat_override) <= set(flat_params)
    merged = profile_params(REPO, "paper")  # what `divwrite smoke --profile paper` applies
    assert flatten(merged).keys() == flat_params.keys()  # no new key, none lost
    assert all(flatten(merged)[k] == v for k, v in flat_override.items())
    assert merged["train"]["methods"] == params["train"]["methods"]  # all ten methods kept


def test_paper_profile_carries_the_papers_settings():
    flat = flatten(load_profile(REPO, "paper"))
    for key, value in METHOD_SETTINGS.items():
        assert flat[key] == value and type(flat[key]) is type(value), key
    # Remote code: an explicit opt-in for jina-embeddings-v3 only.
    assert flat["deviate.trust_remote_code"] is True
    assert flat["model.trust_remote_code"] is False and flat["reward.trust_remote_code"] is False
    assert flat["reward.lora_r"] > 0 and flat["generate.backend"] == "vllm"
    accelerate = yaml.safe_load((REPO / flat["train.accelerate_config"]).read_text())
    assert accelerate["distributed_type"] == "MULTI_GPU" and accelerate["num_processes"] == 8


def test_every_value_of_the_paper_profile_says_where_it_comes_from():
    text = (REPO / "profiles" / "paper.yaml").read_text()
    value_lines = [line for line in text.splitlines() if re.match(r"^\s*[A-Za-z_]\w*:\s*[^\s#]", line)]
    assert len(value_lines) == len(flatten(yaml.safe_load(text)))
    uncommented = [line for line in value_lines if "#" not in line]
    assert not uncommented
    sources = re.compile(r"\[(METHOD|README|estimate|default)\]")
    assert [line for line in value_lines if not sources.search(line)] == []


@pytest.mark.parametrize(
    "profile, problem",
    [
        ("filter:\n  max_token: 2048\n", r"filter\.max_token: unknown key \(got 2048\); filter has: max_tokens"),
        ("filter: 2048\n", r"filter: input should be a valid dictionary or instance of FilterParams \(got 2048\)"),
        ("filter:\n  max_tokens: {a: 1}\n", r"filter\.max_tokens: input should be a valid integer \(got \{'a': 1\}\)"),
        ("sft:\n  learning_rate: '3e-5'\n", r"sft\.learning_rate: input should be a valid number \(got '3e-5'\)"),
        ("deviate:\n  high_quality_first: 'yes'\n", r"deviate\.high_quality_first: input should be a valid boolean"),
    ],
)
def test_a_profile_that_does_not_fit_the_schema_names_the_key(tmp_path, profile, problem):
    """The profile merged over params.yaml goes through the params schema before DVC starts."""
    (tmp_path / "profiles").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles" / "p.yaml").write_text(profile)
    with pytest.raises(ParamsError, match=r"profiles/p\.yaml: " + problem):
        load_profile(tmp_path, "p")


def test_what_a_profile_may_set(tmp_path):
    (tmp_path / "profiles").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles" / "ok.yaml").write_text(
        "data: {columns: {post_text: null}}\n"  # no body column
        "model: {lora: {target_modules: [q_proj, v_proj]}}\n"  # a list where params.yaml has a string
        "sft: {learning_rate: 3}\n"  # an int for a float
    )
    assert load_profile(tmp_path, "ok")["sft"] == {"learning_rate": 3}
    with pytest.raises(ValueError, match=r"no profile 'papr' .*profiles: \[.*'paper'"):
        profile_overrides(REPO, "papr")


def test_overrides_flatten_the_profile_with_hydra_quoting():
    overrides = profile_overrides(REPO, "paper")
    assert overrides[:3] == ["seed=42", "data_seed=42", "data.source='hf:euclaise/WritingPrompts_preferences'"]
    assert "model.base=meta-llama/Llama-3.1-8B" in overrides and "filter.max_tokens=2048" in overrides
    assert "deviate.trust_remote_code=true" in overrides and "dpo.learning_rate=5e-06" in overrides
    assert len(overrides) == len(flatten(load_profile(REPO, "paper")))
    command = exp_run_command(REPO, "paper", queue=True, extra=["data.source=data/raw/wp.parquet"], targets=["filter"])
    assert command[:8] == [sys.executable, "-m", "dvc", "exp", "run", "-n", "paper", "--queue"]
    sets = [command[i + 1] for i, word in enumerate(command) if word == "-S"]
    assert [s for s in sets if s.startswith("data.source=")] == ["data.source=data/raw/wp.parquet"]  # extra replaces
    assert len(sets) == len(overrides) and command[-1] == "filter"
    assert exp_run_command(REPO, "paper", name="llama-8b")[6] == "llama-8b"


def test_stages_read_back_what_dvc_writes():
    """`dvc exp run -S` writes params.yaml with DVC's own code: every value must come back to
    the stages (`core.params.read_params`) as the profile wrote it, type included."""
    expected = flatten(deep_merge(read_params(REPO / "params.yaml"), load_profile(REPO, "paper")))
    seen = flatten(stage_view(REPO, profile_overrides(REPO, "paper")))
    wrong = {k: (v, seen[k]) for k, v in expected.items() if type(seen[k]) is not type(v) or seen[k] != v}
    assert not wrong, f"{_ROUND_TRIP_FIX}: {wrong}"
    check_round_trip(REPO, "paper")  # what run_profile_experiment checks before it starts DVC


def test_a_value_the_stages_would_misread_stops_the_experiment(tmp_path):
    # ruamel (DVC) writes the string "yes" unquoted; PyYAML (the stages) reads it as true.
    (tmp_path / "profiles").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles" / "odd.yaml").write_text("data:\n  hf_split: 'yes'\n")
    assert profile_overrides(tmp_path, "odd") == ["data.hf_split='yes'"]
    with pytest.raises(ValueError, match=r"data\.hf_split: the profile says 'yes', the stages would read True"):
        run_profile_experiment(tmp_path, "odd", dry_run=True)
    (tmp_path / "profiles" / "unknown.yaml").write_text("data:\n  split: test\n")
    with pytest.raises(ParamsError, match=r"data\.split: unknown key"):
        run_profile_experiment(tmp_path, "unknown", dry_run=True)


@pytest.mark.slow
def test_the_profile_queues_as_a_dvc_experiment(tmp_path):
    """A real `dvc exp run --queue -n paper -S ...` in a git copy of the project: DVC takes
    every override, and the queued experiment's params are the merged profile."""
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    env = _clean_env()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "baseline"]):
        subprocess.run([*git, *args], cwd=repo, check=True, env=env)
    proc = subprocess.run(exp_run_command(repo, "paper", queue=True), cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "Queued experiment 'paper'" in proc.stdout, proc.stdout + proc.stderr
    show = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    queued = [e for rev in json.loads(show.stdout) for group in rev.get("experiments") or [] for e in group["revs"]]
    assert [e["name"] for e in queued] == ["paper"]
    dvc_params = flatten(queued[0]["data"]["params"]["params.yaml"]["data"])
    expected = flatten(deep_merge(read_params(REPO / "params.yaml"), load_profile(REPO, "paper")))
    assert dvc_params == expected


# ------------------------------------------------------------------ offline run of ingest and filter

WORDS = (
    "the a and of to in she he they it was had said night ship dragon city door light old new last first "
    "king queen robot star sea fire river road house letter name time world voice hand eyes home war "
    "quiet dark bright strange small long never always again slowly before after under over across"
).split()
MIN_SCORE, MAX_SCORE = -4, 12000  # the fixture's global upvote range (METHOD.md step 1: m and M)


def _story(rng: np.random.Generator, n_words: int) -> str:
    words = rng.choice(WORDS, size=n_words)
    sentences = [" ".join(words[i : i + 9]) for i in range(0, n_words, 9)]
    return " ".join(s[0].upper() + s[1:] + "." for s in sentences)


@dataclass
class Comment:
    text: str | None
    score: int
    kind: str  # story | moderation | deleted | empty | long | boundary_keep | boundary_drop


def _hub_records(rng: np.random.Generator) -> list[dict]:
    """32 records in the hub's schema: 30 prompts with stories and the junk the filter is for,
    one post without comments, one repost (same title and body) of record 8. Kinds of
    comments are kept beside (`_kinds`), boundary stories are added later (`_add_boundary`)."""
    junk = {
        0: [Comment("**Welcome to the Prompt!** All top-level comments must be a story.", 1, "moderation"),
            Comment("[deleted]", 3, "deleted")],
        1: [Comment("[removed]", 0, "deleted"), Comment("", 2, "empty"), Comment(None, 1, "empty"),
            Comment("   \n", 1, "empty")],
        2: [Comment("Off-topic: This submission has been removed for breaking rule 2.", 1, "moderation")],
        3: [Comment("**Off-Topic Discussion**: all non-story replies go here.", 5, "moderation")],
        4: [Comment(_story(rng, 2600), 40, "long")],
    }  # fmt: skip
    records = []
    for i in range(30):
        tag = "" if i % 7 == 3 else ("[EU] " if i % 5 == 1 else "[WP] ")
        body = _story(rng, 12) if i % 6 == 2 else ""
        n_stories = 1 if i in (6, 7) else 2 + i % 5
        comments = [Comment(_story(rng, int(rng.integers(40, 260))), int(rng.integers(0, 500)), "story")
                    for _ in range(n_stories)]  # fmt: skip
        comments += junk.get(i, [])
        if i == 6:
            comments.append(Comment("[deleted]", 2, "deleted"))  # leaves one story: too few responses
        if i == 7:
            comments.append(Comment(_story(rng, 2600), 7, "long"))  # ditto, through the token rule
        records.append({"title": f"{tag}Prompt {i}: {_story(rng, 8)}", "body": body, "comments": comments})
    records[9]["comments"][0].score, records[10]["comments"][0].score = MIN_SCORE, MAX_SCORE
    records.append({"title": "[WP] A post nobody answered", "body": "", "comments": []})
    records.append({"title": records[8]["title"], "body": records[8]["body"],  # a repost: merged into one prompt
                    "comments": [Comment(_story(rng, 80), int(rng.integers(0, 500)), "story") for _ in range(2)]})  # fmt: skip
    return records


def _chat_length(tokenizer, prompt: str, response: str) -> int:
    """Tokens of one (prompt, response) chat, rendered and encoded on its own (as TRL does)."""
    text = tokenizer.apply_chat_template(chat_messages(prompt, response), tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _add_boundary(records: list[dict], tokenizer) -> None:
    """Record 5 gets two stories of exactly 2,048 and 2,049 chat tokens: " the" is one token
    of the stand-in tokenizer, so each extra word adds exactly one token."""
    rec = records[5]
    prompt = build_prompt(rec["title"], rec["body"])
    base = _chat_length(tokenizer, prompt, "the")
    assert _chat_length(tokenizer, prompt, "the the") == base + 1
    n = MAX_TOKENS - base + 1
    keep, drop = " ".join(["the"] * n), " ".join(["the"] * (n + 1))
    assert (_chat_length(tokenizer, prompt, keep), _chat_length(tokenizer, prompt, drop)) == (
        MAX_TOKENS,
        MAX_TOKENS + 1,
    )
    rec["comments"] += [Comment(keep, 9, "boundary_keep"), Comment(drop, 11, "boundary_drop")]


def _write_hub_folder(records: list[dict], folder: Path, rng: np.random.Generator) -> None:
    """The hub repository's layout: the card (features) and one parquet shard of the train split."""
    (folder / "data").mkdir(parents=True)
    shutil.copyfile(HUB_CARD, folder / "README.md")
    schema = pa.schema([("post_text", pa.string()), ("post_title", pa.string()), ("post_scores", pa.int64()),
                        ("comment_texts", pa.list_(pa.string())), ("comment_scores", pa.list_(pa.int64())),
                        ("comment_times", pa.list_(pa.string()))])  # fmt: skip
    rows = [
        {
            "post_text": r["body"],
            "post_title": r["title"],
            "post_scores": int(rng.integers(1, 3000)),
            "comment_texts": [c.text for c in r["comments"]],
            "comment_scores": [c.score for c in r["comments"]],
            "comment_times": [f"2019-05-{1 + j % 28:02d}T12:00:00" for j in range(len(r["comments"]))],
        }
        for r in records
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "data" / "train-00000-of-00001.parquet")


def _kinds(records: list[dict]) -> pd.DataFrame:
    """One row per comment: its ids (as ingest numbers them: a repost's comments after the
    original's), kind, upvotes and text, and the prompt text the title and body make."""
    rows, next_index = [], {}
    for rec in records:
        pid = prompt_id(rec["title"], rec["body"])
        start = next_index.get(pid, 0)
        core = re.sub(r"^\[(WP|EU)\] ", "", rec["title"])  # the fixture's tags, removed by hand
        for j, c in enumerate(rec["comments"]):
            rows.append({"prompt_id": pid, "response_id": response_id(pid, start + j), "kind": c.kind,
                         "upvotes": float(c.score), "text": c.text or "", "prompt": core + "\n" + rec["body"]})  # fmt: skip
        next_index[pid] = start + len(rec["comments"])
    return pd.DataFrame(rows)


def _expected_removals(kinds: pd.DataFrame) -> pd.Series:
    """The filter rule (METHOD.md step 2) that should remove each comment, "" if kept."""
    rule = kinds["kind"].map({"story": "", "boundary_keep": "", "moderation": "moderation", "deleted": "deleted",
                              "empty": "empty", "long": "too_long", "boundary_drop": "too_long"})  # fmt: skip
    left = rule.eq("").groupby(kinds["prompt_id"]).transform("sum")
    return rule.mask(rule.eq("") & left.lt(2), "too_few_responses")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """ingest -> base -> filter with the paper profile, on the hub-schema folder, through DVC."""
    tmp = tmp_path_factory.mktemp("paper-offline")
    rng = np.random.default_rng(2025)
    records = _hub_records(rng)
    # The stand-in for Llama-3.1-8B's tokenizer: byte-level BPE, saved like a hub checkpoint, no chat template.
    tok_dir = tmp / "tokenizer"
    texts = [c.text for r in records for c in r["comments"] if c.text]
    train_bpe_tokenizer(texts, vocab_size=1024, out_dir=tok_dir)
    (tok_dir / "chat_template.jinja").unlink()
    stand_in = load_tokenizer(tok_dir)
    assert stand_in.chat_template is None and ensure_chat_template(stand_in)  # as the base stage does
    _add_boundary(records, stand_in)
    hub = tmp / "WritingPrompts_preferences"
    _write_hub_folder(records, hub, rng)

    work = prepare_smoke_copy(REPO, tmp / "project", profile="paper")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["source"] = f"hf:{hub}"  # offline: the local folder instead of the hub id
    params["model"]["base"] = str(tok_dir)  # offline: the stand-in tokenizer instead of Llama's
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _clean_env(HF_DATASETS_CACHE=str(tmp / "hf-datasets"))
    proc = subprocess.run([sys.executable, "-m", "divwrite.cli", "repro", "filter"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"work": work, "hub": hub, "records": records, "kinds": _kinds(records), "params": params, "env": env}


def _read(offline, name: str):
    return json.loads((offline["work"] / name).read_text())


@pytest.mark.slow
def test_the_fixture_has_the_hub_schema(offline):
    import datasets

    ds = datasets.load_dataset(str(offline["hub"]), split="train", cache_dir=offline["env"]["HF_DATASETS_CACHE"])
    expected = datasets.Features({k: datasets.List(datasets.Value(v[0])) if isinstance(v, list) else datasets.Value(v)
                                  for k, v in HUB_FEATURES.items()})  # fmt: skip
    assert ds.features == expected and ds.num_rows == 32
    card = yaml.safe_load(HUB_CARD.read_text().split("---")[1])
    assert {f["name"] for f in card["dataset_info"]["features"]} == set(HUB_FEATURES)


@pytest.mark.slow
def test_the_run_used_the_paper_profile(offline):
    lock = yaml.safe_load((offline["work"] / "dvc.lock").read_text())["stages"]
    assert {"ingest", "base", "filter"} <= set(lock)
    assert lock["ingest"]["params"]["params.yaml"]["data"]["source"] == f"hf:{offline['hub']}"
    assert lock["filter"]["params"]["params.yaml"]["filter"]["max_tokens"] == MAX_TOKENS
    paper = flatten(load_profile(REPO, "paper"))
    ran = flatten(yaml.safe_load((offline["work"] / "params.yaml").read_text()))
    assert {k for k in paper if ran[k] != paper[k]} == {"data.source", "model.base"}  # the two offline overrides
    base = json.loads((offline["work"] / "models/base/tokenizer_config.json").read_text())
    template = base.get("chat_template") or (offline["work"] / "models/base/chat_template.jinja").read_text()
    assert template == FALLBACK_CHAT_TEMPLATE  # a tokenizer without a template gets the fallback


@pytest.mark.slow
def test_ingest_reads_every_record_through_the_hf_path(offline):
    kinds, stats = offline["kinds"], _read(offline, "reports/stages/ingest.json")
    assert stats["source"] == {"records": 32, "records_without_responses": 1, "duplicate_prompt_records": 1,
                               "responses": len(kinds)}  # fmt: skip
    assert stats["prompts"] == {"train": 27, "test": 3}  # 30 prompts, 10% held out (METHOD.md step 1)
    train, test = (pd.read_parquet(offline["work"] / f"data/ingested/{s}.parquet") for s in ("train", "test"))
    both = pd.concat([train, test])
    assert not set(train.prompt_id) & set(test.prompt_id)  # split by prompt, never by response
    assert sorted(both.response_id) == sorted(kinds.response_id)
    joined = both.merge(kinds, on="response_id", suffixes=("", "_src"))
    assert (joined["prompt"] == joined["prompt_src"]).all()  # tag stripped, title + "\n" + body
    assert (joined["response"] == joined["text"]).all() and (joined["upvotes"] == joined["upvotes_src"]).all()


@pytest.mark.slow
def test_scores_follow_the_iterated_log_transform(offline):
    both = pd.concat([pd.read_parquet(offline["work"] / f"data/ingested/{s}.parquet") for s in ("train", "test")])
    assert (both.upvotes.min(), both.upvotes.max()) == (MIN_SCORE, MAX_SCORE)

    def iterated_log(x: float) -> float:  # x <- log(x + 1), K = 100 times
        for _ in range(100):
            x = math.log1p(x)
        return x

    lo, hi = iterated_log(1.0), iterated_log(MAX_SCORE - MIN_SCORE + 1.0)
    expected = [2 * (iterated_log(s - MIN_SCORE + 1.0) - lo) / (hi - lo) - 1 for s in both.upvotes]
    assert np.allclose(both.score, expected, rtol=0, atol=1e-12)
    by_upvotes = dict(zip(both.upvotes, both.score))
    assert by_upvotes[MIN_SCORE] == -1.0 and by_upvotes[MAX_SCORE] == 1.0
    assert by_upvotes[0.0] == pytest.approx(0.19556096559299263, abs=1e-12)  # s = 0: x = 5 vs bounds 1 and 12005


@pytest.mark.slow
def test_filter_applies_each_rule_and_the_2048_token_cut(offline):
    work, kinds = offline["work"], offline["kinds"]
    kinds = kinds.assign(rule=_expected_removals(kinds))
    removed = _read(offline, "reports/stages/filter.json")["removed"]
    for split in ("train", "test"):
        ingested = pd.read_parquet(work / f"data/ingested/{split}.parquet")
        kept = pd.read_parquet(work / f"data/filtered/{split}.parquet")
        mine = kinds[kinds.response_id.isin(ingested.response_id)]
        assert sorted(kept.response_id) == sorted(mine.response_id[mine.rule.eq("")])
        expected = mine.rule.value_counts().to_dict()
        counts = removed[split]
        assert counts["input"] == len(ingested) and counts["output"] == len(kept) == expected.get("", 0)
        for rule in ("moderation", "deleted", "empty", "too_long", "too_few_responses"):
            assert counts[rule] == expected.get(rule, 0), (split, rule)
        assert counts["duplicate"] == 0  # off, as in the paper
    # The token rule, recounted one chat at a time with the tokenizer filter used (models/base).
    tokenizer = load_tokenizer(work / "models/base")
    stories = kinds[kinds.kind.isin(["story", "long", "boundary_keep", "boundary_drop"])]
    lengths = {r.response_id: _chat_length(tokenizer, r.prompt, r.text) for r in stories.itertuples()}
    too_long = {rid for rid, n in lengths.items() if n > MAX_TOKENS}
    assert too_long == set(stories.response_id[stories.kind.isin(["long", "boundary_drop"])])
    edge = stories.set_index("kind").response_id
    assert lengths[edge["boundary_keep"]] == MAX_TOKENS and lengths[edge["boundary_drop"]] == MAX_TOKENS + 1
    kept_all = pd.concat([pd.read_parquet(work / f"data/filtered/{s}.parquet") for s in ("train", "test")])
    assert edge["boundary_keep"] in set(kept_all.response_id) and edge["boundary_drop"] not in set(kept_all.response_id)
    assert kept_all.groupby("prompt_id").size().min() >= 2


@pytest.mark.slow
def test_data_gates_pass_and_the_dataset_card_matches(offline):
    work, kinds = offline["work"], offline["kinds"].assign(rule=lambda d: _expected_removals(d))
    for gate in ("ingest", "filter"):
        summary = _read(offline, f"reports/gates/{gate}.json")
        assert summary["success"] is True and summary["failed"] == 0 and summary["expectations"] > 10, gate
        assert summary["warnings"] == 0, gate  # no story over 5,000 words, 4% empty or deleted bodies
        assert (work / f"reports/data_docs/{gate}/index.html").is_file()
    card = _read(offline, "reports/dataset_card.json")
    for split in ("train", "test"):
        ids = set(pd.read_parquet(work / f"data/ingested/{split}.parquet").response_id)
        for stage, rows in (("ingested", kinds[kinds.response_id.isin(ids)]),
                            ("filtered", kinds[kinds.response_id.isin(ids) & kinds.rule.eq("")])):  # fmt: skip
            c, per_prompt = card[stage][split], rows.groupby("prompt_id").size()
            assert (c["prompts"], c["responses"]) == (rows.prompt_id.nunique(), len(rows)), (stage, split)
            assert c["mean_response_words"] == round(float(np.mean([len(t.split()) for t in rows.text])), 2)
            assert c["responses_per_prompt"]["min"] == per_prompt.min()
            assert c["responses_per_prompt"]["max"] == per_prompt.max()
    assert card["filtered"]["train"]["prompts"] + card["filtered"]["test"]["prompts"] == 28  # prompts 6 and 7 go
    assert "# Dataset card" in (work / "reports/dataset_card.md").read_text()


@pytest.mark.slow
def test_stage_runs_are_in_the_papers_mlflow_experiment(offline):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{offline['work'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("divwrite-paper")  # the profile's mlflow.experiment
    runs = client.search_runs([experiment.experiment_id])
    names = {r.info.run_name: r for r in runs}
    assert {"pipeline", "ingest", "base", "filter"} <= set(names)
    assert all(names[n].info.status == "FINISHED" for n in ("pipeline", "ingest", "base", "filter"))
    pipeline_id = names["pipeline"].info.run_id
    assert all(names[n].data.tags.get("mlflow.parentRunId") == pipeline_id for n in ("ingest", "base", "filter"))
    assert names["filter"].data.params["filter.max_tokens"] == str(MAX_TOKENS)
