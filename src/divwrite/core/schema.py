"""The schema of `params.yaml`: one pydantic model per section, unknown keys forbidden.

Every stage loads the params once through `Params` (`core.params.load_params`), and the same
model checks a profile merged over `params.yaml` and the result of `dvc exp run -S` overrides
(`ops.profiles`), the ablation grid and the seeds. A misspelt or mistyped key fails at load
time with `core.params.ParamsError`, one line per problem naming the dotted key, the value
given and what was expected (`pair.gapp: unknown key (got 3); pair has: gap`).

Types are strict: a number written as text, a flag written `yes` or `1`, a list where a
mapping belongs are refused, never coerced. A whole number stays an int where the YAML wrote
one (`Number`), so a section dumped back (`model_dump()`) equals what the file holds: the
training checkpoints' fingerprints hash these sections.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PlainValidator,
    PositiveInt,
    field_validator,
    model_validator,
)


def _number(value: Any) -> int | float:
    """An int or a float, kept as it is (not a flag, not text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    return value


def _positive(value: Any) -> int | float:
    if not _number(value) > 0:
        raise ValueError("expected a number > 0")
    return value


# A real-valued setting that may be written as a whole number (epochs: 6) and keeps its type.
Number = Annotated[int | float, PlainValidator(_number)]
PositiveNumber = Annotated[int | float, PlainValidator(_positive)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
Bounds = Annotated[tuple[float, float], Field(strict=False)]  # [low, high] in the YAML


class Section(BaseModel):
    """A params section: strict types, unknown keys refused, read-only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _check_bounds(model: BaseModel, names: tuple[str, ...]) -> None:
    for name in names:
        low, high = getattr(model, name)
        if low > high:
            raise ValueError(f"{name}: lower bound {low} > upper bound {high}")


# --------------------------------------------------------------------------- data stages


# The canonical fields each `data.layout` reads (the pairs layout: `data.pairs`).
_SCORED = ("post_title", "post_text", "comment_texts", "comment_scores")
LAYOUT_FIELDS = {"per_prompt": _SCORED, "per_response": _SCORED, "pairs": ("prompt", "chosen", "rejected", "margin")}


class Columns(Section):
    """The source's name for each canonical field (`post_text: null`: no body; `margin: null`: none)."""

    post_title: NonEmptyStr = "post_title"
    post_text: NonEmptyStr | None = "post_text"
    comment_texts: NonEmptyStr = "comment_texts"
    comment_scores: NonEmptyStr = "comment_scores"
    prompt: NonEmptyStr = "prompt"
    chosen: NonEmptyStr = "chosen"
    rejected: NonEmptyStr = "rejected"
    margin: NonEmptyStr | None = None

    def of_layout(self, layout: str) -> dict[str, str | None]:
        """Canonical field -> source column, for the fields `layout` reads (`LAYOUT_FIELDS`)."""
        return {field: getattr(self, field) for field in LAYOUT_FIELDS[layout]}


class DataParams(Section):
    """Where the records come from (`data.sources`): `builtin`, a local file or `hf:<dataset id>`."""

    source: NonEmptyStr
    hf_split: NonEmptyStr = "train"
    layout: Literal["per_prompt", "per_response", "pairs"] = "per_prompt"
    columns: Columns = Columns()

    @model_validator(mode="after")
    def _columns(self) -> DataParams:
        names = [n for n in self.columns.of_layout(self.layout).values() if n is not None]
        shared = sorted({n for n in names if names.count(n) > 1})
        if shared:
            raise ValueError(f"several fields map to the same source column(s) {shared}")
        if self.layout == "pairs" and self.source == "builtin":
            raise ValueError("layout 'pairs' reads judged pairs from a file or hf:<id>; the built-in corpus has scores")
        return self


class IngestParams(Section):
    test_fraction: Annotated[float, Field(ge=0.0, lt=1.0)]
    transform_iterations: NonNegativeInt


class CorpusParams(Section):
    n_prompts: PositiveInt
    mean_responses: Annotated[float, Field(gt=0.0)]
    max_responses: PositiveInt
    junk_rate: Annotated[float, Field(ge=0.0, lt=1.0)]
    quality_noise_sd: NonNegativeFloat  # the part of a story's quality that its text does not show
    upvote_noise_sd: NonNegativeFloat  # readers' noise on top of the quality (log-upvotes)


class FilterParams(Section):
    max_tokens: PositiveInt
    min_responses: PositiveInt
    drop_duplicates: bool


class PairParams(Section):
    gap: NonNegativeFloat


class GatesParams(Section):
    """Bounds of the Great Expectations gates (`data.gates`)."""

    min_prompts: PositiveInt  # prompts in a responses table
    min_response_words: NonNegativeInt  # words per response (whitespace-separated)
    max_response_words: PositiveInt  # ingest: a warning (filter removes them); later: critical
    mean_response_words: Bounds
    median_response_words: Bounds
    mean_prompt_words: Bounds  # each prompt once
    max_responses_per_prompt: PositiveInt
    mean_responses_per_prompt: Bounds
    max_empty_share: Share  # ingest warning: share of empty / deleted / removed bodies
    min_pairs_per_prompt: NonNegativeInt
    min_gap_share: Share  # pair warning: share of pairs that meet pair.gap
    max_removed_share: Share = 0.2  # filter warning: share of a split's responses a rule removes
    data_docs: bool  # GX Data Docs HTML in reports/data_docs/<stage>/

    @model_validator(mode="after")
    def _ordered(self) -> GatesParams:
        _check_bounds(self, ("mean_response_words", "median_response_words", "mean_prompt_words"))
        _check_bounds(self, ("mean_responses_per_prompt",))
        if self.min_response_words > self.max_response_words:
            raise ValueError(
                f"min_response_words {self.min_response_words} > max_response_words {self.max_response_words}"
            )
        return self


class DeviateParams(Section):
    semantic_embedder: NonEmptyStr
    style_embedder: NonEmptyStr
    max_responses: NonNegativeInt  # 0 = all
    min_weight: NonNegativeFloat
    high_quality_first: bool
    batch_size: PositiveInt
    trust_remote_code: bool
    embedding_cache: bool


class DivpoParams(Section):
    rho: Annotated[float, Field(gt=0.0, le=100.0)]  # % of a prompt's responses in the high / low sets
    pairs_per_prompt: PositiveInt


# --------------------------------------------------------------------------- models and training


class LoraParams(Section):
    r: NonNegativeInt  # 0 = full fine-tuning
    alpha: PositiveInt
    dropout: Share
    target_modules: NonEmptyStr | list[NonEmptyStr]


class ModelParams(Section):
    base: NonEmptyStr  # builtin | a hub id or local path | gguf:<file.gguf> | smollm2 (training.model_source)
    trust_remote_code: bool
    vocab_size: PositiveInt
    hidden_size: PositiveInt
    intermediate_size: PositiveInt
    num_layers: PositiveInt
    num_heads: PositiveInt
    max_position_embeddings: PositiveInt
    lora: LoraParams

    @model_validator(mode="after")
    def _heads(self) -> ModelParams:
        if self.base.startswith("gguf:") and not self.base.endswith(".gguf"):
            raise ValueError(f"base {self.base!r}: expected gguf:<path to a .gguf file>")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class Method(Section):
    """One `train.methods` entry: the model it starts from, its loss, its data, its weights."""

    init: NonEmptyStr  # base, or another method
    loss: Literal["sft", "dpo", "orpo"]
    data: NonEmptyStr  # data/<data>/train.parquet
    # deviation-weighted (DDPO / DORPO): METHOD.md step 4, or qg (quality-gated, docs/weighting.md)
    weights: Literal["sem", "sty", "both", "qg"] | None = None

    @model_validator(mode="after")
    def _weighted_preference(self) -> Method:
        if self.weights is not None and self.loss == "sft":
            raise ValueError("weights apply to the dpo and orpo losses only")
        return self

    @property
    def trainer_method(self) -> str:
        """dpo, ddpo-<weights>, orpo or dorpo-<weights> (`training.runs.PREFERENCE_METHODS`)."""
        return f"d{self.loss}-{self.weights}" if self.weights else self.loss


class TrainParams(Section):
    accelerate_config: NonEmptyStr
    checkpoint_steps: NonNegativeInt
    ref_logps_cache: bool
    methods: dict[str, Method]

    @model_validator(mode="after")
    def _starts(self) -> TrainParams:
        if not self.methods:
            raise ValueError("methods: at least one method")
        for name, method in self.methods.items():
            seen = {name}
            init = method.init
            while init != "base":
                if init not in self.methods:
                    raise ValueError(f"methods.{name}: init {init!r} is neither 'base' nor a method")
                if init in seen:
                    raise ValueError(f"methods.{name}: its init chain loops ({' -> '.join([*seen, init])})")
                seen.add(init)
                init = self.methods[init].init
        return self


class SftParams(Section):
    epochs: PositiveNumber
    learning_rate: Annotated[float, Field(gt=0.0)]
    batch_size: PositiveInt
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)]


class PreferenceParams(Section):
    """DPO (also DDPO, DivPO) or ORPO (also DORPO); `beta` is ORPO's lambda."""

    beta: Annotated[float, Field(gt=0.0)]
    learning_rate: Annotated[float, Field(gt=0.0)]
    epochs: PositiveNumber
    batch_size: PositiveInt


class RewardParams(Section):
    model: NonEmptyStr
    lora_r: NonNegativeInt
    lora_alpha: PositiveInt
    freeze_layers: NonNegativeInt
    max_length: PositiveInt
    epochs: PositiveNumber
    learning_rate: Annotated[float, Field(gt=0.0)]
    batch_size: PositiveInt
    val_fraction: Annotated[float, Field(ge=0.0, lt=1.0)]
    trust_remote_code: bool


# --------------------------------------------------------------------------- evaluation


class GenerateParams(Section):
    backend: Literal["transformers", "vllm"]
    n_samples: PositiveInt
    max_new_tokens: PositiveInt
    temperature: Annotated[float, Field(gt=0.0)]
    top_k: NonNegativeInt
    top_p: Annotated[float, Field(gt=0.0, le=1.0)]
    repetition_penalty: Annotated[float, Field(gt=0.0)]
    batch_size: PositiveInt


class EvaluateParams(Section):
    max_prompts: NonNegativeInt  # 0 = all
    min_human_responses: PositiveInt
    confidence: Probability
    distinct_threshold: Annotated[float, Field(gt=0.0, le=2.0)]  # cosine distance (evaluation.metrics)


class PremiseParams(Section):
    """The testbed's premise checks (`evaluation.premise`), fixed before any deviation-weighted
    result was looked at."""

    min_signal: Share  # P1
    min_reward_accuracy: Share  # P2
    min_on_topic: Share  # P3
    min_recognised: Share  # P3
    max_on_topic_drop: Share  # P4
    methods: Annotated[list[NonEmptyStr], Field(min_length=1)]  # P4: preference methods that must raise quality
    narrowing_method: NonEmptyStr  # P5


class MlflowParams(Section):
    experiment: NonEmptyStr


# --------------------------------------------------------------------------- experiments

_VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class AblationParams(Section):
    """`make ablate`: the Figure 3 grid (`ops.ablation`). Its methods are checked against
    `train.methods` where the grid is built (`ops.experiments.methods_to_delete`), not here:
    an experiment deletes the methods it does not train, and its params.yaml still names them."""

    methods: Annotated[list[NonEmptyStr], Field(min_length=1)]
    max_responses: Annotated[list[NonNegativeInt], Field(min_length=1)]
    variants: Annotated[dict[str, dict[str, Any] | None], Field(min_length=1)]  # name -> -S overrides

    @field_validator("max_responses")
    @classmethod
    def _unique(cls, sizes: list[int]) -> list[int]:
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"duplicates in {sizes}")
        return sizes

    @field_validator("variants")
    @classmethod
    def _names(cls, variants: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in variants if not _VARIANT_NAME.match(name)]
        if bad:
            raise ValueError(f"bad variant name(s) {bad} (lowercase letters, digits, '-')")
        return variants


class ReplicateParams(Section):
    """`make seeds`: the claim over seeds and its rules of record (`ops.seeds`); its methods are
    checked where the seeds are queued, as the ablation's are."""

    seeds: Annotated[list[NonNegativeInt], Field(min_length=2)]
    methods: Annotated[list[NonEmptyStr], Field(min_length=1)]
    comparisons: Annotated[list[Annotated[tuple[NonEmptyStr, NonEmptyStr], Field(strict=False)]], Field(min_length=1)]
    quality_margin: NonNegativeFloat
    alpha: Probability

    @model_validator(mode="after")
    def _consistent(self) -> ReplicateParams:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: duplicates in {self.seeds}")
        for a, b in self.comparisons:
            if a == b or a not in self.methods or b not in self.methods:
                raise ValueError(f"comparisons: [{a}, {b}] is not [method, other method] of replicate.methods")
        return self


class Params(Section):
    """All of `params.yaml`."""

    seed: NonNegativeInt
    data_seed: NonNegativeInt
    data: DataParams
    ingest: IngestParams
    corpus: CorpusParams
    filter: FilterParams
    pair: PairParams
    gates: GatesParams
    deviate: DeviateParams
    divpo: DivpoParams
    model: ModelParams
    train: TrainParams
    sft: SftParams
    dpo: PreferenceParams
    orpo: PreferenceParams
    reward: RewardParams
    generate: GenerateParams
    evaluate: EvaluateParams
    premise: PremiseParams
    mlflow: MlflowParams
    ablation: AblationParams
    replicate: ReplicateParams

    def preference(self, loss: str) -> PreferenceParams:
        """The `dpo` or `orpo` section."""
        return self.dpo if loss == "dpo" else self.orpo
