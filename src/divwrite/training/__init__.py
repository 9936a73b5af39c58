"""The generator and its post-training: tokenizer, model, the METHOD.md losses, TRL trainers, the training runs, checkpoints and the launcher."""
