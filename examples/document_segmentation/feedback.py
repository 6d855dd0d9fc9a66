"""A scripted round of feedback: a person confirms the true segments of documents the model got
wrong, through the same HTTP calls the labelling page makes."""

import json
import sys
import time
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765"
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 40
VALIDATION_FROM = 140  # held-out documents are never labelled

def documents_when_up(seconds: float = 60.0) -> list:
    """The app is starting in the background: wait for it to answer."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return json.load(urllib.request.urlopen(f"{url}/api/documents"))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


documents = documents_when_up()
confirmed = 0
for document in documents:
    number = int(document["name"].split("_")[1])
    truth = [position == 0 for position in range(len(document["pages"]))]
    if number >= VALIDATION_FROM or document["first_pages"] == truth or confirmed >= limit:
        continue
    request = urllib.request.Request(
        f"{url}/api/confirm", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"document": document["name"], "first_pages": truth}).encode(),
    )
    urllib.request.urlopen(request).read()
    confirmed += 1
print(f"confirmed {confirmed} documents")
