"""The labelling app: every PDF's pages, coloured by segment (a new colour at each first page).

What it shows comes from the store: the newest predictions (infer.py's predicted_first_page)
and, where people have labelled a page, their newest first_page (by labelled_at), which wins.
Click a page to mark or unmark it as a first page, then confirm the PDF: each confirmation is
logged as first_page per document and page and committed at once, so it survives a restart of the app and
the next training round reads it. It touches `labels`, so that make knows the model is stale.
"""

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route

import trellis

port = trellis.arg("port", 8765)
# feedback.py starts the app with a secret: it proves which process answers, and allows a stop
TOKEN = os.environ.get("LABELLING_APP_TOKEN", "")

texts = trellis.dataframe("heading", "text", latest=True).sort_values(["document", "page"])
order = sorted(set(texts["document_value"]))
pictures = {name: [page["pictures"] for page in pages]
            for name, pages in json.loads(Path("pages/pages.json").read_text()).items()}
predicted = {(row.document_value, row.page): bool(row.predicted_first_page) for row in
             trellis.dataframe("predicted_first_page", latest=True).itertuples()}
try:
    labelled = trellis.dataframe("first_page", "labelled_at").sort_values("labelled_at", kind="stable")
except trellis.UnknownNameError:
    labelled = None  # nobody has labelled a page yet
by_people = {} if labelled is None else {
    (row.document_value, row.page): bool(row.first_page) for row in labelled.itertuples()
}


def listing_of(name: str) -> dict:
    pages = texts[texts["document_value"] == name]
    keys = [(name, page) for page in pages["page"]]
    return {
        "name": name,
        "pages": [{"heading": heading, "text": text[:200], "pictures": pictures[name][position]}
                  for position, (heading, text) in enumerate(zip(pages["heading"], pages["text"]))],
        "first_pages": [by_people.get(key, predicted.get(key, False)) for key in keys],
        "labelled_by_people": all(key in by_people for key in keys),
    }


async def listing(request: Request) -> JSONResponse:
    return JSONResponse([listing_of(name) for name in order])


async def confirm(request: Request) -> JSONResponse:
    body = await request.json()
    name, flags = body.get("document"), body.get("first_pages")
    if name not in pictures or not isinstance(flags, list) or len(flags) != len(pictures[name]):
        return JSONResponse({"error": "send a known document and one flag per page"}, status_code=400)
    # the store's tstamp is the run's start; labelled_at orders confirmations within a run
    labelled_at = time.time()
    with trellis.iteration("document", order.index(name), name):
        for position, flag in enumerate(flags):
            with trellis.iteration("page", position):
                trellis.log("first_page", bool(flag))
                trellis.log("labelled_at", labelled_at)
    trellis.commit()  # each confirmation is written at once, as its own consistent point
    for position, flag in enumerate(flags):
        by_people[name, position] = bool(flag)
    Path("labels").touch()
    return JSONResponse({"document": name, "confirmed": len(flags)})


async def picture(request: Request) -> FileResponse:
    return FileResponse(Path("pages", Path(request.path_params["name"]).name))


async def identity(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid(), "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()})


async def stop(request: Request) -> JSONResponse:
    if not TOKEN or (await request.json()).get("token") != TOKEN:
        return JSONResponse({"error": "only the process that started the app may stop it"}, status_code=403)
    server.should_exit = True
    return JSONResponse({"stopping": True})


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(Path(__file__).with_name("labelling.html").read_text())


app = Starlette(routes=[
    Route("/", page),
    Route("/api/documents", listing),
    Route("/api/confirm", confirm, methods=["POST"]),
    Route("/api/identity", identity),
    Route("/api/stop", stop, methods=["POST"]),
    Route("/pictures/{name}", picture),
])
server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

if __name__ == "__main__":
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait
    try:
        listening.bind(("127.0.0.1", port))
    except OSError as error:
        # an exception, not an exit code: the run is recorded as failed, with this message
        raise RuntimeError(f"the labelling app cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
    print(f"labelling app on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[listening])
