"""The labelling app: each document's pages coloured by predicted segment.

Click a page to mark or unmark it as a document's first page, then confirm: every confirmation
is logged with trellis (at the document and page it concerns) and committed at once, so the
next training round can read it.
"""

import json
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

import trellis

port = trellis.arg("port", 8765)
documents = {p.stem: json.loads(p.read_text())["pages"] for p in sorted(Path("raw").glob("doc_*.json"))}
order = list(documents)
predictions = json.loads(Path("predictions.json").read_text())


async def listing(request: Request) -> JSONResponse:
    return JSONResponse([
        {"name": name, "pages": documents[name], "first_pages": predictions.get(name, [])}
        for name in order
    ])


async def confirm(request: Request) -> JSONResponse:
    body = await request.json()
    name, flags = body.get("document"), body.get("first_pages")
    if name not in documents or not isinstance(flags, list) or len(flags) != len(documents[name]):
        return JSONResponse({"error": "send a known document and one flag per page"}, status_code=400)
    with trellis.iteration("document", order.index(name), name):
        for position, flag in enumerate(flags):
            with trellis.iteration("page", position):
                trellis.log("confirmed_first_page", bool(flag))
    trellis.commit()
    predictions[name] = [bool(f) for f in flags]
    return JSONResponse({"document": name, "confirmed": len(flags)})


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(Path(__file__).with_name("labelling.html").read_text())


app = Starlette(routes=[
    Route("/", page),
    Route("/api/documents", listing),
    Route("/api/confirm", confirm, methods=["POST"]),
])

if __name__ == "__main__":
    print(f"labelling app on http://127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
