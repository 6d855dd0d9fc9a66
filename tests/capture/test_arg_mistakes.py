"""``trellis.arg`` used wrong, or given a wrong command line: one line that says what to do,
never a traceback; a default trellis cannot keep is named as what ``trellis.arg`` was given."""

from __future__ import annotations

import pytest

import trellis


def _one_line(project, script: str, *args: str) -> list[str]:
    project.write("uses_arg.py", script)
    done = project.run("uses_arg.py", *args, check=False)
    assert done.returncode != 0
    return done.stderr.strip().splitlines()


def test_a_name_that_is_not_a_str_is_one_line(project):
    lines = _one_line(project, "import trellis\ntrellis.arg(123, 1)\n")
    assert lines == ['trellis: trellis.arg: the name must be a str, like trellis.arg("lr", 0.1), not int']


@pytest.mark.parametrize("default", ['"base"', "3", "0.5", "[1, 2]", "None"])
def test_a_flag_without_a_value_is_one_line_unless_the_default_is_a_bool(project, default):
    lines = _one_line(project, f"import trellis\ntrellis.arg('model_name', {default})\n", "--model-name")
    assert lines == [
        "trellis: argument model_name: --model-name needs a value (--model-name VALUE or"
        " --model-name=VALUE); only an argument whose default is True or False may be given alone"
    ]


def test_a_flag_without_a_value_sets_a_bool(project):
    project.write("flag.py", "import trellis\nprint(trellis.arg('fast', False), trellis.arg('slow', True))\n")
    assert project.run("flag.py", "--fast", "--slow").stdout.strip() == "True True"


def test_a_default_trellis_cannot_keep_is_named_as_an_arg(project, monkeypatch):
    project.write("odd_default.py", """
        import trellis

        class Model:
            def __repr__(self):
                return "Model()"

        model = trellis.arg("model", Model())
        print(type(model).__name__)
    """)
    done = project.run("odd_default.py")
    assert done.stdout.strip() == "Model"
    warnings = [line for line in done.stderr.splitlines() if "UserWarning" in line]
    assert len(warnings) == 1 and "odd_default.py:8: UserWarning: trellis.arg('model', ...):" in warnings[0]
    assert "trellis.log" not in done.stderr
    monkeypatch.chdir(project.root)
    assert trellis.dataframe()["model"].tolist() == [{"type": "Model", "repr": "Model()"}]
