"""Values no one should log, logged anyway: the script finishes, each costs a bounded time and
memory, and the store gets what can be kept of it."""

from __future__ import annotations

import json

import trellis


def test_huge_recursive_and_misbehaving_values_cost_little_and_are_kept(project, monkeypatch):
    project.write("hostile.py", """
        import tracemalloc, numpy as np, trellis

        class Raises:
            def __repr__(self):
                raise RuntimeError("no repr")

        class Hangs:
            def __repr__(self):
                while True:
                    pass

        def peak_of(name, value):
            tracemalloc.start()
            trellis.log(name, value)
            print(name, tracemalloc.get_traced_memory()[1], flush=True)
            tracemalloc.stop()

        looped = []
        looped.append(looped)
        shared = []
        for _ in range(60):  # 2**60 paths to the innermost list
            shared = [shared, shared]
        # a gigabyte of float64 that takes no memory: the cost of logging it cannot come from copying
        gigabyte = np.broadcast_to(np.float64(1.5), (1 << 27,))
        assert gigabyte.nbytes == 1 << 30
        peak_of("gigabyte", gigabyte)
        peak_of("long_list", list(range(3_000_000)))
        peak_of("looped", looped)
        peak_of("shared", shared)
        trellis.log("raises", Raises())
        trellis.log("hangs", Hangs())
        trellis.log("hangs", Hangs())  # the type is not asked again
        trellis.log("huge_int", 7 ** 20000)
        trellis.log("long_text", "x" * (65 << 20))
        trellis.log("fine", {"a": [1, 2.5, None]})
        print("end", flush=True)
    """)
    done = project.run("hostile.py")
    lines = dict(line.split() for line in done.stdout.splitlines() if line != "end")
    assert done.stdout.rstrip().endswith("end")
    # bytes: far below a copy of the list (its JSON alone is 23 MB) or of the gigabyte
    assert all(int(peak) < 16_000_000 for peak in lines.values()), lines

    monkeypatch.chdir(project.root)
    stored = dict(zip(*trellis.query(
        "SELECT name, text_value FROM logs WHERE name <> 'huge_int' ORDER BY id").to_dict("list").values()))
    objects = {name: json.loads(text) for name, text in stored.items() if text and name != "fine"}
    assert objects["gigabyte"]["type"] == "ndarray" and "shape=(134217728,)" in objects["gigabyte"]["repr"]
    assert objects["long_list"]["repr"].startswith("[0, 1, 2, 3")
    assert objects["looped"]["repr"] == "[[[[[[[...]]]]]]]"
    assert objects["shared"]["type"] == "list"
    assert objects["raises"]["repr"].startswith("<Raises instance")
    assert objects["hangs"]["repr"] == "<Hangs: repr took over 1 s>"
    assert objects["long_text"] == {"type": "str", "repr": "x" * 200 + "...", "length": 65 << 20}
    frame = trellis.dataframe("huge_int", "fine")
    assert frame["huge_int"].dropna().tolist() == [7 ** 20000]
    assert frame["fine"].dropna().tolist() == [{"a": [1, 2.5, None]}]
    assert trellis.runs()[0]["status"] == "ok"
