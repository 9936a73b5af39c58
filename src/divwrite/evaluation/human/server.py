"""The raters' web page and its JSON API, on the standard library's threading HTTP server.

The page (`static/`: plain HTML, CSS and JS, nothing from a CDN) shows one task at a time:
the prompt, set A and set B side by side, the paper's two questions (Figure 6) and an
optional comment. Every click is POSTed at once and appended to the answers file with
fsync before the server answers, and on load the page asks which tasks this rater has
answered and opens the first unanswered one: closing the tab loses nothing.

API (JSON in and out; errors are `{"error": "..."}` with a 4xx status):

- `GET /api/tasks`: the prompts and sets, without which method is A or B;
- `GET /api/progress?rater=NAME`: this rater's latest answers, answered / total;
- `POST /api/answers` `{"rater", "task_id", "q1", "q2", "comment"}`: save one answer.

The server binds a loopback address unless `allow_remote` is given, and on loopback it
only answers requests whose Host header names the loopback (a web page elsewhere cannot
reach it through DNS rebinding). POSTs must be `application/json`, which a cross-site
form cannot send without a CORS preflight that this server never grants.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from divwrite.evaluation.human.answers import AnswerLog, is_complete, latest_answers, validate_answer, validate_rater
from divwrite.evaluation.human.tasks import QUESTIONS, load_tasks, public_tasks

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
STATIC_FILES = {  # URL path -> (file in static/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_host(host: str, allow_remote: bool = False) -> str:
    """The IP address to bind: `host` itself, "localhost" as 127.0.0.1. ValueError for a
    non-loopback address without `allow_remote`, or for a name that is not an IP address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host {host!r} is not an IP address (or 'localhost'): name the address to bind") from None
    if not address.is_loopback and not allow_remote:
        raise ValueError(
            f"refusing to bind {host}: it is not a loopback address, and the page has no login, so anyone who "
            "reaches it can read the stories and answer in a rater's name. Use 127.0.0.1 (and an SSH tunnel), "
            "or pass allow_remote=True (--allow-remote) on a network you trust"
        )
    return str(address)


class HumanEvalServer(ThreadingHTTPServer):
    """An HTTP server bound to one task file and its answers file."""

    daemon_threads = True

    def __init__(
        self, tasks_path: str | Path, answers_path: str | Path, host: str, port: int, allow_remote: bool, quiet: bool
    ) -> None:
        address = check_host(host, allow_remote)
        self.tasks = load_tasks(tasks_path)
        self.task_ids = [t["task_id"] for t in self.tasks["tasks"]]
        self.answers = AnswerLog(answers_path, self.tasks["digest"])
        self.answers.recover()
        self.answers.read()  # an answers file of another task file fails here, before binding
        self.public = json.dumps(public_tasks(self.tasks), ensure_ascii=False).encode("utf-8")
        static = resources.files("divwrite.evaluation.human") / "static"
        self.static = {url: (static.joinpath(name).read_bytes(), kind) for url, (name, kind) in STATIC_FILES.items()}
        self.loopback = ipaddress.ip_address(address).is_loopback
        self.quiet = quiet
        if ipaddress.ip_address(address).version == 6:
            self.address_family = socket.AF_INET6
        super().__init__((address, port), HumanEvalHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def allowed_hosts(self) -> set[str]:
        names = {"localhost", "127.0.0.1", "[::1]", self.server_address[0]}
        return {f"{name}:{self.port}" for name in names} | ({"localhost"} if self.port == 80 else set())

    def progress(self, rater: str) -> dict[str, Any]:
        """A rater's latest answer per task, and how many tasks they completed."""
        latest = latest_answers(self.answers.read())
        mine = {
            task_id: {q: record[q] for q in (*QUESTIONS, "comment")}
            for (who, task_id), record in latest.items()
            if who == rater
        }
        answered = sum(is_complete(a) for a in mine.values())
        return {"rater": rater, "total": len(self.task_ids), "answered": answered, "answers": mine}


class HumanEvalHandler(BaseHTTPRequestHandler):
    server: HumanEvalServer
    server_version = "divwrite-human-eval"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _handle(self, route: Any) -> None:
        """Run `route`, answering a refused request with its status and a JSON error and
        anything unexpected with a 500 (the traceback goes to stderr, never to the client)."""
        try:
            if self.server.loopback and self.headers.get("Host", "") not in self.server.allowed_hosts():
                raise RequestError(HTTPStatus.BAD_REQUEST, f"unexpected Host header {self.headers.get('Host')!r}")
            route()
        except RequestError as err:
            self._json(err.status, {"error": str(err)})
        except ValueError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except Exception as err:  # noqa: BLE001 - one bad request must not stop the server
            logger.error("human-eval server: %s: %s", type(err).__name__, err)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the server's output"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _not_allowed(self) -> None:
        self._handle(lambda: self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported"))

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    @staticmethod
    def _refuse(status: HTTPStatus, message: str) -> None:
        raise RequestError(status, message)

    def _get(self) -> None:
        url = urlsplit(self.path)
        if url.path in self.server.static:
            body, kind = self.server.static[url.path]
            self._send(HTTPStatus.OK, body, kind)
        elif url.path == "/favicon.ico":  # browsers ask for it; there is none
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif url.path == "/api/tasks":
            self._send(HTTPStatus.OK, self.server.public, "application/json; charset=utf-8")
        elif url.path == "/api/progress":
            query = parse_qs(url.query)
            rater = validate_rater((query.get("rater") or [None])[0])
            self._json(HTTPStatus.OK, self.server.progress(rater))
        else:
            self._refuse(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")

    def _post(self) -> None:
        if urlsplit(self.path).path != "/api/answers":
            self._refuse(HTTPStatus.NOT_FOUND, f"no such endpoint: {self.path}")
        if self.headers.get_content_type() != "application/json":
            self._refuse(HTTPStatus.BAD_REQUEST, "send the answer as Content-Type: application/json")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(HTTPStatus.BAD_REQUEST, "a Content-Length header is required")
        if not 0 < length <= MAX_BODY_BYTES:
            self._refuse(HTTPStatus.BAD_REQUEST, f"the body must be 1 to {MAX_BODY_BYTES} bytes, got {length}")
        try:
            payload = json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self._refuse(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {err}")
        answer = validate_answer(payload, self.server.task_ids)
        self.server.answers.append(answer)
        progress = self.server.progress(answer["rater"])
        self._json(HTTPStatus.OK, {"saved": True, "answered": progress["answered"], "total": progress["total"]})


def make_server(
    tasks_path: str | Path,
    answers_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    quiet: bool = False,
) -> HumanEvalServer:
    """A bound, not yet serving, server (port 0: any free port; see `.url`)."""
    return HumanEvalServer(tasks_path, answers_path, host, port, allow_remote, quiet)


def serve(
    tasks_path: str | Path,
    answers_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    quiet: bool = False,
) -> None:
    """Serve the rating page until interrupted (Ctrl-C), printing the address to open."""
    server = make_server(tasks_path, answers_path, host, port, allow_remote, quiet)
    if not server.loopback:
        logger.warning("serving on %s to the network, without a login", server.url)
    print(f"human evaluation of {len(server.task_ids)} tasks; answers -> {server.answers.path}")  # noqa: T201
    print(f"open {server.url}/?rater=YOUR_NAME  (Ctrl-C to stop)", flush=True)  # noqa: T201 - what to open
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
