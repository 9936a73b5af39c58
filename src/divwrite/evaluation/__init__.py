"""Sampling and scoring: generation, the reward model, metrics, per-prompt scoring and comparisons, reports and figures, the human evaluation kit."""
