"""Every Python example in the README runs as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    if "plot" in code:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # examples may write files
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
