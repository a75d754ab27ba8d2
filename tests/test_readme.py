"""The README example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "(32, 500, 256) int8" in out
    assert "log Z =" in out


def test_readme_tempering_example_runs(capsys, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[1], str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "round trips" in out and "log Z" in out
    error, stderr = (float(v) for v in out.strip().splitlines()[-1].split(" +- "))
    assert abs(error) < 5 * stderr + 0.05
    assert (tmp_path / "barrier.png").stat().st_size > 10_000


def test_readme_commands_are_the_ci_commands():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest -q" in text and "python -m pytest -q" in ci
    assert "hamon-nnx demo" in text


def test_readme_training_example_runs(capsys, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[2], str(README), "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "runs" / "rbm-final" / "model.json").exists()
    assert "[" in capsys.readouterr().out
