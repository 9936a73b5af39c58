"""A tiny model, tokenizer and preference pairs shared by the preference-trainer tests
(test_trainers.py for DDPO, test_trainers_orpo.py for DORPO, test_length_grouping.py,
test_trl_hooks.py). The fixtures built from them, `tokenizer` and `base_model`, are in conftest.py."""

from __future__ import annotations

import random

from datasets import Dataset

from divwrite.training.modeling import build_builtin_model
from divwrite.training.tokenizer import train_bpe_tokenizer

WORDS = "the a cat dog ran sat on mat night sky star ship sea storm old man woman child said and then".split()
N_PAIRS = 6
BETA = 0.1  # DPO's beta and ORPO's lambda in every trainer config here


def tiny_tokenizer(directory):
    """A byte-level BPE tokenizer (320 tokens) trained on random sentences of `WORDS`, saved to `directory`."""
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(300)]
    return train_bpe_tokenizer(texts, 320, directory)


def tiny_model(tokenizer):
    """A seeded 2-layer Llama with hidden size 32 on `tokenizer`'s vocabulary."""
    return build_builtin_model(
        tokenizer, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128, seed=0
    )


def pairs(weights=None, n=N_PAIRS, seed=1) -> Dataset:
    rng = random.Random(seed)

    def text(k):
        return " ".join(rng.choice(WORDS) for _ in range(k))

    rows = {
        "prompt": [[{"role": "user", "content": text(rng.randint(2, 6))}] for _ in range(n)],
        "chosen": [[{"role": "assistant", "content": text(rng.randint(3, 12))}] for _ in range(n)],
        "rejected": [[{"role": "assistant", "content": text(rng.randint(3, 12))}] for _ in range(n)],
    }
    if weights is not None:
        rows["weight"] = [float(w) for w in weights]
    return Dataset.from_dict(rows)


def loss_and_grads(trainer, batch):
    """The trainer's loss on `batch` and every parameter's gradient (model in train mode)."""
    model = trainer.model
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def cfg_kwargs(tmp_path, **extra):
    """Trainer config kwargs shared by the DPO and ORPO configs: one batch of all pairs, CPU, fp32, beta 0.1."""
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=N_PAIRS,
        per_device_eval_batch_size=N_PAIRS,
        bf16=False,
        activation_checkpointing=False,
        use_cpu=True,
        report_to="none",
        beta=BETA,
        max_length=64,
        seed=0,
        disable_tqdm=True,
    )
    kwargs.update(extra)
    return kwargs


def collate(trainer, dataset=None):
    """One collated batch of the whole (tokenised) dataset, in order, through the trainer's collator."""
    dataset = trainer.train_dataset if dataset is None else dataset
    dataset = trainer._remove_unused_columns(dataset, description="training")
    return trainer.data_collator([dataset[i] for i in range(len(dataset))])
