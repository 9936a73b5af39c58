"""Logging (`divwrite.core.logs`): one stderr handler however often it is set up, and under
`accelerate launch` only rank 0 below warnings."""

import logging

from divwrite.core.logs import StderrHandler, setup_logging


def _emit(level: int, message: str) -> None:
    logging.getLogger("divwrite.test").log(level, message)


def test_rank_zero_logs_everything_other_ranks_only_warnings(monkeypatch, capsys):
    setup_logging("INFO")
    monkeypatch.setenv("RANK", "0")
    _emit(logging.INFO, "step 1 on rank 0")
    monkeypatch.setenv("RANK", "1")
    _emit(logging.INFO, "step 1 on rank 1")
    _emit(logging.WARNING, "disk almost full")
    err = capsys.readouterr().err
    assert "INFO divwrite.test: step 1 on rank 0" in err
    assert "step 1 on rank 1" not in err
    assert "WARNING divwrite.test: [rank 1] disk almost full" in err


def test_set_up_once_whatever_the_calls(capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    for _ in range(3):
        setup_logging()
    handlers = [h for h in logging.getLogger("divwrite").handlers if isinstance(h, StderrHandler)]
    assert len(handlers) == 1
    _emit(logging.WARNING, "once")
    assert capsys.readouterr().err.count("once") == 1


def test_the_level_comes_from_the_environment(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("DIVWRITE_LOG_LEVEL", "WARNING")
    setup_logging()
    _emit(logging.INFO, "quiet")
    assert "quiet" not in capsys.readouterr().err
    setup_logging("INFO")
