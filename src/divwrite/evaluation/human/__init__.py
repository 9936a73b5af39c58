"""Human evaluation kit (the paper's Table 2 and Figure 6): export A/B comparison tasks from
two methods' generations, serve a local page where raters answer them (every answer saved as
it is given, resumable), and analyse the answers with exact binomial tests.

`tasks` (export), `answers` (the answers file), `server` (page and API), `analysis`
(Table 2), `cli` (`divwrite human ...`). The names below load their module on first use, so
importing the package (the command line does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_tasks": "tasks",
    "load_tasks": "tasks",
    "make_server": "server",
    "serve": "server",
    "analyze": "analysis",
    "write_analysis": "analysis",
    "report_markdown": "analysis",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
