"""``trellis ui``: a read-only dashboard over the project's store (Starlette, served by uvicorn).

Every page is the same small HTML shell running the JS bundle, which reads a JSON API made of
the query functions. Safety:

- it binds 127.0.0.1 unless told otherwise; on loopback it answers only requests addressed to a
  loopback name (a web page cannot reach it through a DNS name that resolves to 127.0.0.1);
- bound anywhere else it needs a token, printed at start-up in the URL to open, and checked on
  every request (the URL's ``token``, then a cookie, or an ``Authorization: Bearer`` header);
- only GET and HEAD are answered, and the store is opened read-only: nothing changes it or runs
  code;
- stored objects (cell outputs) are served by their hash alone, from the store's object folder;
- pages may run only the bundle (a Content-Security-Policy with no inline script), and the
  bundle puts stored text into the page as text, HTML outputs into sandboxed frames.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import secrets
import socket
import threading
import webbrowser
from html import escape
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlencode

from trellis._errors import TrellisError
from trellis.ui.bundle import bundle_text

DEFAULT_PORT = 8770
COOKIE = "trellis_token"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:;"
    " style-src 'self' 'unsafe-inline'; frame-src 'self'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    if host.strip("[]") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: the host and token checks, the read-only rule and the security headers,
    before any route runs."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refuse(scope, headers)
        if refusal is not None:
            status, message = refusal
            await _plain(send, status, message)
            return
        offered = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS if k not in present)]
                if self.token and offered:
                    cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    message["headers"].append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refuse(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, "the trellis dashboard is read-only: only GET and HEAD are answered"
        if self.token is None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if not is_loopback(name):
                return 403, "this dashboard answers only on a loopback address (127.0.0.1, localhost)"
            return None
        if not any(secrets.compare_digest(candidate.encode(), self.token.encode())
                   for candidate in _offered_tokens(scope, headers)):
            return 401, "this dashboard needs its token: open the URL `trellis ui` printed"
        return None


def _offered_tokens(scope: dict, headers: dict[str, str]) -> list[str]:
    offered = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:
        pass
    if COOKIE in cookie:
        offered.append(cookie[COOKIE].value)
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        offered.append(authorization[7:].strip())
    return offered


async def _plain(send: Callable, status: int, message: str) -> None:
    body = (message + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def create_app(root: Path | None = None, token: str | None = None) -> Any:
    """The dashboard app over the store of the project at ``root`` (default: found from the
    current folder, or ``TRELLIS_STORE``)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from trellis.queries import overview
    from trellis.queries.diff import diff
    from trellis.queries.lineage import grouped, lineage
    from trellis.queries.notebook_graph import notebook_graph
    from trellis.store.connection import open_store
    from trellis.store.objects import object_path

    project = _project_name(root)

    def read(work: Callable[[Any, Request], Any]) -> Callable[[Request], Awaitable[Response]]:
        """A JSON endpoint over a read-only store opened for the one request."""

        def respond(request: Request) -> Response:
            try:
                store = open_store(root=root, read_only=True)
            except TrellisError as error:
                return JSONResponse({"error": str(error)}, status_code=503)
            try:
                return Response(overview.json_text(work(store, request)), media_type="application/json")
            except TrellisError as error:
                return JSONResponse({"error": str(error)}, status_code=404)
            finally:
                store.close()

        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(respond, request)

        return endpoint

    def required(request: Request, name: str, example: str) -> str:
        value = request.query_params.get(name)
        if not value:
            raise TrellisError(f"give {name}: {example}")
        return value

    def in_project(store: Any, path: str) -> str:
        """A path as the user gave it, relative to the project (the server's folder may differ)."""
        return path if Path(path).is_absolute() else str(store.project / path)

    def series(store: Any, request: Request) -> Any:
        refs = request.query_params.getlist("run")
        if not refs:
            raise TrellisError("give at least one run: /api/series?name=loss&run=ID")
        return overview.series(store, required(request, "name", "/api/series?name=loss&run=ID"), refs)

    def lineage_of(store: Any, request: Request) -> Any:
        target = required(request, "target", "/api/lineage?target=model.pkl")
        if not target.startswith("run:") and ".ipynb:" not in target:
            target = in_project(store, target)
        downstream = request.query_params.get("downstream") == "1"
        graph = lineage(store, target, downstream)
        # a data set of many source files is one node, as the CLI prints it; group=0 for each file
        return graph if downstream or request.query_params.get("group") == "0" else grouped(graph)

    def stored_object(request: Request) -> Response:
        """An object by its hash, only from the store's object folder, as inert bytes."""
        digest = request.path_params["digest"]
        if not _DIGEST.fullmatch(digest):
            return Response("not an object hash\n", status_code=404, media_type="text/plain")
        try:
            store = open_store(root=root, read_only=True)
        except TrellisError as error:
            return Response(f"{error}\n", status_code=503, media_type="text/plain")
        store.close()
        try:
            path = object_path(store.objects, digest)
        except TrellisError:
            path = None
        if path is None or not path.is_file():
            return Response("no such object\n", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type="application/octet-stream",
                        headers={"content-security-policy": "sandbox; default-src 'none'"})

    def shell(request: Request) -> Response:
        data = _api_of(request.url.path, request.query_params.get("path"))
        preload = (f'<link rel="preload" href="{escape(data)}" as="fetch" crossorigin>\n'
                   if data else "")
        return HTMLResponse(_SHELL.format(title=escape(f"trellis: {project}"), preload=preload))

    def script(request: Request) -> Response:
        return Response(bundle_text(), media_type="text/javascript")

    api = {
        "/api/runs": lambda store, request: overview.runs_table(store),
        "/api/runs/{ref}": lambda store, request: overview.run_page(store, request.path_params["ref"]),
        "/api/runs/{ref}/code": lambda store, request: overview.snapshot_text(
            store, request.path_params["ref"], request.query_params.get("path") or None),
        "/api/series": series,
        "/api/notebooks": lambda store, request: overview.notebooks(store),
        "/api/notebook": lambda store, request: notebook_graph(
            store, in_project(store, required(request, "path", "/notebook?path=NB.ipynb"))),
        "/api/files": lambda store, request: overview.written_files(store),
        "/api/lineage": lineage_of,
        "/api/diff": lambda store, request: diff(
            store, required(request, "a", "/api/diff?a=ID&b=ID"), required(request, "b", "/api/diff?a=ID&b=ID")),
    }
    pages = ["/", "/runs/{ref}", "/runs/{ref}/code", "/notebooks", "/notebook", "/lineage", "/diff"]
    routes = [Route(path, shell, methods=["GET"]) for path in pages]
    routes += [Route("/static/trellis.js", script, methods=["GET"]),
               Route("/objects/{digest}", stored_object, methods=["GET"])]
    routes += [Route(path, read(work), methods=["GET"]) for path, work in api.items()]

    def not_found(request: Request, error: Exception) -> Response:
        if request.url.path.startswith("/api/"):  # the bundle reads every API answer as JSON
            return JSONResponse({"error": f"no such address: {request.url.path}"}, status_code=404)
        return Response("not found\n", status_code=404, media_type="text/plain")

    return Guard(Starlette(routes=routes, exception_handlers={404: not_found}), token)


_SHELL = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
{preload}<script type="module" src="/static/trellis.js"></script>
</head>
<body>
<div id="trellis-app"><p>Loading…</p></div>
<noscript>The trellis dashboard needs JavaScript.</noscript>
</body>
</html>
"""


def _api_of(page: str, notebook: str | None) -> str | None:
    """The API address a page's script fetches first, for the browser to fetch while it loads the
    script (the address must be spelt as the script spells it)."""
    if page == "/":
        return "/api/runs"
    if page == "/notebook" and notebook:
        return "/api/notebook?" + urlencode({"path": notebook})
    if page.startswith("/runs/") and page.count("/") == 2:
        return "/api" + page
    return None


def _project_name(root: Path | None) -> str:
    from trellis.store.connection import project_root

    return project_root(root).name


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, open_browser: bool = True,
          root: Path | None = None, announce: Callable[[str], None] = print) -> None:
    """Serve the dashboard until interrupted; ``port`` 0 picks a free one."""
    try:
        import uvicorn
    except ImportError:
        raise TrellisError("the dashboard needs: pip install 'trellis[ui]'") from None
    bundle_text()  # not built: say so now, not on the first page
    from trellis.store.connection import open_store

    open_store(root=root, read_only=True).close()  # no store: say so now, not on the first page
    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    listening = _listen(host, port)
    bound_port = listening.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/" + (f"?token={token}" if token else "")
    config = uvicorn.Config(create_app(root, token), log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    announce(f"trellis ui: {url}  (Ctrl-C stops it)")
    if token:
        announce("bound beyond this machine: every request needs the token in that URL")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, (url,)).start()
    try:
        server.run(sockets=[listening])
    finally:
        listening.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host.strip("[]"), port))
    except OSError as error:
        listening.close()
        if port and error.errno == errno.EADDRINUSE:
            raise TrellisError(f"port {port} is in use; pick another with --port") from None
        raise TrellisError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    listening.listen(128)
    listening.set_inheritable(True)
    return listening
