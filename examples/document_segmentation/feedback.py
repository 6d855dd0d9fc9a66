"""A scripted round of feedback: a person reviews the PDFs nobody has labelled yet, in order,
and confirms each one's true segments (correcting the model where it was wrong), through the
same HTTP calls the labelling page makes.

It starts the app itself, on a free port it picks, with a secret, and talks to the app only
after the process answering on that port has proved to be that app (its pid and the secret's
hash); it stops the app through the app's own stop call, so that the app's run ends ok. Any
failure (the app cannot bind, someone else answers, a confirmation is refused) fails this.
"""

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from segmentation import split_of

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 30  # PDFs a person confirms in one round


def call(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def wait_for(app: subprocess.Popen, url: str, token: str, seconds: float = 120.0) -> None:
    """Until the process answering at url is app: it proves its pid and knows the secret."""
    expected = {"pid": app.pid, "token_sha256": hashlib.sha256(token.encode()).hexdigest()}
    deadline = time.monotonic() + seconds
    while True:
        if app.poll() is not None:
            sys.exit(f"feedback: the labelling app exited ({app.returncode}) before it served")
        try:
            answer = call(f"{url}/api/identity")
        except OSError:
            answer = None
        if answer is not None:
            if answer != expected:
                app.kill()
                sys.exit(f"feedback: another process answers at {url}; nothing was sent to it")
            return
        if time.monotonic() > deadline:
            app.kill()
            sys.exit(f"feedback: the labelling app did not answer at {url} in {seconds:.0f} s")
        time.sleep(0.2)


with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
url, token = f"http://127.0.0.1:{port}", secrets.token_hex(16)
app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)],
                       env={**os.environ, "LABELLING_APP_TOKEN": token})
try:
    wait_for(app, url, token)
    answers = json.loads(Path("raw/answers.json").read_text())
    documents, pages, corrected = 0, 0, 0
    for document in call(f"{url}/api/documents"):
        name = document["name"]
        if split_of(name) != "pool" or document["labelled_by_people"]:
            continue
        corrected += document["first_pages"] != answers[name]
        confirmed = call(f"{url}/api/confirm", {"document": name, "first_pages": answers[name]})
        if confirmed.get("confirmed") != len(answers[name]):
            sys.exit(f"feedback: the app did not record {name}: {confirmed}")
        documents, pages = documents + 1, pages + confirmed["confirmed"]
        if documents >= LIMIT:
            break
    call(f"{url}/api/stop", {"token": token})
    if app.wait(60) != 0:
        sys.exit(f"feedback: the labelling app ended with {app.returncode}")
finally:
    if app.poll() is None:
        app.kill()
print(f"confirmed {documents} PDFs ({pages} pages) in the labelling app;"
      f" the model was wrong on {corrected} of them")
