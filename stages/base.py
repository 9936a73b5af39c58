"""base: the generator before post-training - its tokenizer and initial weights.

Built-in: a byte-level BPE tokenizer trained on the train split and a small Llama built
from `model` params (seeded). Hub model or GGUF file (`training.model_source`): its tokenizer
(given a plain chat template if it has none), and where to load it from; for a GGUF file also
its sha256, so that new weights under the same name change this stage's output.
`filter` needs the tokenizer to count prompt+response tokens with the chat template.
"""

import logging
from pathlib import Path

from divwrite.core.files import write_json
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.training.model_source import resolve_model_source
from divwrite.training.modeling import builtin_model_from_params
from divwrite.training.tokenizer import ensure_chat_template, load_tokenizer, train_bpe_tokenizer

OUT = Path("models/base")
logger = logging.getLogger("divwrite.stages.base")


def main(params: Params) -> dict:
    cfg = params.model
    source = {"base": cfg.base}
    if cfg.base == "builtin":
        train = read_input("data/ingested/train.parquet", ["prompt", "response"])
        texts = list(train["prompt"].drop_duplicates()) + list(train["response"])
        tokenizer = train_bpe_tokenizer(texts, vocab_size=cfg.vocab_size, out_dir=OUT)
        model = builtin_model_from_params(tokenizer, cfg, seed=params.seed)
        model.save_pretrained(OUT)
        n_params = sum(p.numel() for p in model.parameters())
    else:
        resolved = resolve_model_source(cfg.base)
        if resolved.is_gguf:
            source.update(gguf_file=resolved.gguf_file, gguf_sha256=resolved.gguf_sha256())
        tokenizer = load_tokenizer(cfg.base, trust_remote_code=cfg.trust_remote_code)
        if ensure_chat_template(tokenizer):
            logger.info("base: %s has no chat template; using training.tokenizer.FALLBACK_CHAT_TEMPLATE", cfg.base)
        tokenizer.save_pretrained(OUT)
        n_params = 0
    write_json(source, OUT / "source.json")
    return {"vocab_size": len(tokenizer), "parameters": n_params}


if __name__ == "__main__":
    run_stage("base", main)
