"""`divwrite human export|serve|analyze`: the human evaluation from the command line.

A comparison lives in one folder, `reports/human_eval/<a>_vs_<b>/` by default:
`tasks.json` (export), `answers.jsonl` (serve; the raters' answers, irreplaceable: commit
it), `results.json` and `results.md` (analyze).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_ROOT = Path("reports/human_eval")
DEFAULT_PORT = 8765


def comparison_dir(method_a: str, method_b: str) -> Path:
    return DEFAULT_ROOT / f"{method_a}_vs_{method_b}"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `human` with its three subcommands to the `divwrite` command line."""
    human = subparsers.add_parser(
        "human", help="human evaluation (Table 2): export tasks, serve the rating page, analyze"
    )
    sub = human.add_subparsers(dest="human_command", required=True)

    export = sub.add_parser("export", help="write the A/B comparison tasks of two methods' generations")
    export.add_argument("method_a", help="e.g. ddpo-both")
    export.add_argument("method_b", help="e.g. dpo")
    export.add_argument("--generations", type=Path, default=Path("data/generations"), help="folder of <method>.parquet")
    export.add_argument(
        "--out", type=Path, default=None, help="task file (default: <a>_vs_<b>/tasks.json in reports/human_eval)"
    )
    export.add_argument("--seed", type=int, default=None, help="seed of the A/B order (default: params.yaml `seed`)")
    export.add_argument("--n-samples", type=int, default=4, help="stories per set (default: 4)")
    export.add_argument("--max-prompts", type=int, default=None, help="only the first N prompts (by id)")
    export.add_argument(
        "--excerpt-words", type=int, default=None, help="words shown before 'full story' (default: 150)"
    )

    serve = sub.add_parser("serve", help="serve the rating page; every answer is saved as it is given")
    serve.add_argument("tasks", type=Path, help="task file from `divwrite human export`")
    serve.add_argument(
        "--answers", type=Path, default=None, help="answers file (default: answers.jsonl beside the tasks)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free one)"
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (no login on the page: trusted networks only)",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log requests")

    analyze = sub.add_parser("analyze", help="win rates and exact binomial tests -> results.json, results.md, MLflow")
    analyze.add_argument("tasks", type=Path, help="task file from `divwrite human export`")
    analyze.add_argument(
        "--answers", type=Path, default=None, help="answers file (default: answers.jsonl beside the tasks)"
    )
    analyze.add_argument("--out-dir", type=Path, default=None, help="where results.* go (default: beside the tasks)")
    analyze.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    return human


def _default_seed() -> int:
    """params.yaml's `seed` (checked against the schema); ValueError without a params.yaml."""
    from divwrite.core.params import load_params

    try:
        return load_params().seed
    except FileNotFoundError:
        raise ValueError("no --seed given and no params.yaml here: pass --seed N") from None


def run(args: argparse.Namespace) -> int:
    """Run the `human` subcommand parsed by `add_parser`; 2 with a one-line message on bad input."""
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as err:
        logging.getLogger(__name__).error("divwrite human %s: %s", args.human_command, err)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.human_command == "export":
        from divwrite.evaluation.human.tasks import DEFAULT_EXCERPT_WORDS, export_tasks

        out = args.out or comparison_dir(args.method_a, args.method_b) / "tasks.json"
        document = export_tasks(
            args.generations / f"{args.method_a}.parquet",
            args.generations / f"{args.method_b}.parquet",
            args.method_a,
            args.method_b,
            out,
            seed=args.seed if args.seed is not None else _default_seed(),
            n_samples=args.n_samples,
            max_prompts=args.max_prompts,
            excerpt_words=args.excerpt_words or DEFAULT_EXCERPT_WORDS,
        )
        print(f"{len(document['tasks'])} tasks -> {out}")  # noqa: T201 - the command's output
        return 0
    answers = args.answers or args.tasks.parent / "answers.jsonl"
    if args.human_command == "serve":
        from divwrite.evaluation.human.server import serve

        serve(args.tasks, answers, host=args.host, port=args.port, allow_remote=args.allow_remote, quiet=args.quiet)
        return 0
    from divwrite.evaluation.human.analysis import report_markdown, write_analysis

    out_dir = args.out_dir or args.tasks.parent
    result = write_analysis(
        args.tasks, answers, out_dir / "results.json", out_dir / "results.md", track=not args.no_mlflow
    )
    print(report_markdown(result), end="")  # noqa: T201 - the command's output
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m divwrite.evaluation.human.cli export|serve|analyze ...` (the same as `divwrite human ...`)."""
    from divwrite.core.logs import setup_logging

    setup_logging()
    parser = argparse.ArgumentParser(prog="divwrite")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["human", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
