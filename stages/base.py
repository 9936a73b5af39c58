"""base: the generator before post-training - its tokenizer and initial weights.

Built-in: a byte-level BPE tokenizer trained on the train split and a small Llama built
from `model` params (seeded). Hub model: its tokenizer (given a plain chat template if it has none), and the id to load
it from.
`filter` needs the tokenizer to count prompt+response tokens with the chat template.
"""

import logging
from pathlib import Path

from divwrite.core.files import write_json
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.training.modeling import builtin_model_from_params
from divwrite.training.tokenizer import ensure_chat_template, load_tokenizer, train_bpe_tokenizer

OUT = Path("models/base")
logger = logging.getLogger("divwrite.stages.base")


def main(params: Params) -> dict:
    cfg = params.model
    if cfg.base == "builtin":
        train = read_input("data/ingested/train.parquet", ["prompt", "response"])
        texts = list(train["prompt"].drop_duplicates()) + list(train["response"])
        tokenizer = train_bpe_tokenizer(texts, vocab_size=cfg.vocab_size, out_dir=OUT)
        model = builtin_model_from_params(tokenizer, cfg, seed=params.seed)
        model.save_pretrained(OUT)
        n_params = sum(p.numel() for p in model.parameters())
    else:
        tokenizer = load_tokenizer(cfg.base, trust_remote_code=cfg.trust_remote_code)
        if ensure_chat_template(tokenizer):
            logger.info("base: %s has no chat template; using training.tokenizer.FALLBACK_CHAT_TEMPLATE", cfg.base)
        tokenizer.save_pretrained(OUT)
        n_params = 0
    write_json({"base": cfg.base}, OUT / "source.json")
    return {"vocab_size": len(tokenizer), "parameters": n_params}


if __name__ == "__main__":
    run_stage("base", main)
