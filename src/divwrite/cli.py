"""`divwrite` command line: the pipeline under MLflow, the smoke profile, a profile as a DVC
experiment, the ablation grid, the seeds, the human evaluation, the CI retraining, the stages'
code dependencies, the MLflow UI.

What a command produces (a table, a markdown report, commands with --dry-run) goes to
stdout; progress, warnings and errors go to the log on stderr (`core.logs`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from divwrite.core.logs import setup_logging
from divwrite.evaluation.human import cli as human_cli
from divwrite.ops import retrain as retraining

logger = logging.getLogger("divwrite.cli")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="divwrite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    repro = sub.add_parser("repro", help="dvc repro inside one MLflow pipeline run (extra args go to dvc)")
    repro.add_argument("dvc_args", nargs=argparse.REMAINDER)
    smoke = sub.add_parser("smoke", help="the pipeline with a profile (tiny sizes by default) in a scratch copy")
    smoke.add_argument("--dir", type=Path, default=None, help="where to run (default: a new temp folder)")
    smoke.add_argument("--profile", default="smoke", help="profiles/<name>.yaml to apply (default: smoke)")
    smoke.add_argument("targets", nargs="*", help="stages to reproduce (default: all), e.g. deviate divpo")
    exp = sub.add_parser(
        "exp", help="a profile as a named DVC experiment: dvc exp run -n <name> -S <each value of the profile>"
    )
    exp.add_argument("--profile", required=True, help="profiles/<name>.yaml to apply, e.g. paper")
    exp.add_argument("--name", default=None, help="experiment name (default: the profile's name)")
    exp.add_argument("--queue", action="store_true", help="queue it; dvc exp run --run-all runs the queue")
    exp.add_argument("--dry-run", action="store_true", help="check the profile and print the dvc command, run nothing")
    exp.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="one more override (Hydra syntax, as dvc -S); replaces the profile's value of that key")  # fmt: skip
    exp.add_argument("targets", nargs="*", help="stages to run (default: all), e.g. filter")
    ablate = sub.add_parser("ablate", help="the params `ablation` grid as queued DVC experiments -> reports/ablation.*")
    ablate.add_argument("--max-responses", nargs="+", type=int, metavar="N", help="only these ablation.max_responses")
    ablate.add_argument("--variants", nargs="+", metavar="NAME", help="only these ablation.variants")
    ablate.add_argument("--dry-run", action="store_true", help="print the dvc commands, run nothing")
    ablate.add_argument("--collect-only", action="store_true", help="only collect finished experiments")
    ablate.add_argument("--force", action="store_true", help="re-run grid points this commit already has")
    seeds = sub.add_parser(
        "seeds", help="the claim over params `replicate.seeds` as queued DVC experiments -> reports/seeds.*"
    )
    seeds.add_argument("--dry-run", action="store_true", help="print the dvc commands, run nothing")
    seeds.add_argument("--collect-only", action="store_true", help="only test the claim on finished experiments")
    seeds.add_argument("--force", action="store_true", help="re-run seeds this commit already has")
    seeds.add_argument("--baseline", default=None, help="with --collect-only: the commit the seeds were queued on")
    calibrate = sub.add_parser(
        "calibrate", help="one testbed configuration (sft, dpo, orpo) through the premise checks -> docs/calibration.*"
    )
    calibrate.add_argument("name", help="the configuration's name in docs/calibration.md and MLflow")
    calibrate.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                           help="a method-neutral lever, e.g. corpus.quality_noise_sd=0.2 (value read as YAML)")  # fmt: skip
    calibrate.add_argument("--dir", type=Path, default=None, help="the persistent scratch copy (default .calibration/)")
    compare = sub.add_parser("compare", help="two MLflow runs (id or run name) side by side: metrics, differing params")
    compare.add_argument("run_a", help="run id or name, e.g. eval/dpo")
    compare.add_argument("run_b", help="run id or name, e.g. eval/ddpo-both")
    compare.add_argument("--experiment", default=None, help="look names up in this MLflow experiment only")
    compare.add_argument("--all-params", action="store_true", help="list every param, not only those that differ")
    ui = sub.add_parser(
        "ui", help="the MLflow UI on localhost; prints links to the runs tables and the methods side by side"
    )
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    deps = sub.add_parser("deps", help="each stage's code dependencies from its imports, checked against dvc.yaml")
    deps.add_argument("--check", action="store_true", help="only list what is wrong (exit 1 if anything is)")
    human_cli.add_parser(sub)
    retraining.add_arguments(
        sub.add_parser("retrain", help="CI retraining: a profile on the head (and base) as DVC experiments, "
                       "dvc metrics diff -> step summary, push")
    )  # fmt: skip
    args, extra = parser.parse_known_args(argv)  # `divwrite repro -f embed`: options go to dvc too
    if extra and args.command != "repro":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    if args.command == "human":
        return human_cli.run(args)
    if args.command == "retrain":
        return retraining.run_from_args(args)
    from divwrite.ops import pipeline

    if args.command == "repro":
        return pipeline.run_pipeline(args.dvc_args + extra)
    if args.command == "ablate":
        from divwrite.ops.ablation import run_ablation

        return run_ablation(
            max_responses=args.max_responses,
            variants=args.variants,
            dry_run=args.dry_run,
            collect_only=args.collect_only,
            force=args.force,
        )
    if args.command == "exp":
        from divwrite.ops.profiles import run_profile_experiment

        try:
            return run_profile_experiment(
                Path.cwd(), args.profile, name=args.name, queue=args.queue, extra=args.overrides,
                targets=args.targets, dry_run=args.dry_run,
            )  # fmt: skip
        except ValueError as err:
            logger.error("%s", err)
            return 2
    if args.command == "deps":
        from divwrite.ops.deps import main as deps_main

        return deps_main(Path.cwd(), only_check=args.check)
    if args.command == "compare":
        from divwrite.core.tracking import compare_runs, configure, find_run

        configure(args.experiment or "divwrite", Path.cwd())
        try:
            runs = [find_run(ref, args.experiment) for ref in (args.run_a, args.run_b)]
        except LookupError as err:
            logger.error("%s", err)
            return 2
        print(compare_runs(*runs, all_params=args.all_params), end="")  # noqa: T201 - the command's output
        return 0
    if args.command == "ui":
        return serve_ui(args.port)
    if args.command == "calibrate":
        from divwrite.ops.calibration import run_config

        try:
            return run_config(Path.cwd(), args.name, args.overrides, args.dir)
        except ValueError as err:
            logger.error("%s", err)
            return 2
    if args.command == "seeds":
        from divwrite.ops.seeds import run_seeds

        return run_seeds(dry_run=args.dry_run, collect_only=args.collect_only, force=args.force, baseline=args.baseline)
    return pipeline.run_smoke(args.dir, profile=args.profile, targets=args.targets)


def serve_ui(port: int) -> int:
    """`mlflow ui` on 127.0.0.1:`port` for the project's store (`MLFLOW_TRACKING_URI` overrides
    it), after printing the pages to open (`tracking.ui_links`): MLflow 3.17 opens its GenAI
    overview unless the URL asks for the runs table."""
    import os

    from divwrite.core.tracking import tracking_uri, ui_links, use_store

    root = Path.cwd()
    use_store(root)
    links = ui_links(port)
    print(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops it). Open:")  # noqa: T201 - the command's output
    for label, url in links or [("runs", f"http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning")]:
        print(f"  {label}: {url}")  # noqa: T201 - ditto
    sys.stdout.flush()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    args = ["ui", "--backend-store-uri", tracking_uri(root), "--host", "127.0.0.1", "--port", str(port)]
    os.execv(mlflow, [mlflow, *args])  # noqa: S606 - the MLflow server replaces this process
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
