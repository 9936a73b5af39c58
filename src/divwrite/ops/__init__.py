"""Running the pipeline: DVC and git helpers, the pipeline under MLflow, profiles, the ablation grid, the seeds, CI retraining, stage dependencies."""
