"""Every python block of the README runs as written, and says what it claims."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def check_sampling(out, path):
    assert "(32, 500, 256) int8" in out
    assert "log Z =" in out


def check_tempering(out, path):
    assert "round trips" in out and "log Z" in out
    error, stderr = (float(v) for v in out.strip().splitlines()[-1].split(" +- "))
    assert abs(error) < 5 * stderr + 0.05
    assert (path / "barrier.png").stat().st_size > 10_000


def check_training(out, path):
    assert (path / "runs" / "rbm-final" / "model.json").exists()


def check_quickstart(out, path):
    lines = out.strip().splitlines()
    test_ll = float(lines[0])
    assert -19.0 < test_ll < -17.5, test_ll  # well trained: about -18.3 after 300 steps
    log_z, _, stderr, _, exact = lines[1].split()
    assert abs(float(log_z) - float(exact)) < 5 * float(stderr) + 1e-3


def check_core(out, path):
    words = out.split()
    got, want = float(words[words.index("correlation") + 1]), float(words[-1])
    # 256 chains x 300 draws, correlated: a loose 4-sigma band (sd about 0.004)
    assert abs(got - want) < 0.016, (got, want)


def check_recipes(out, path):
    epoch, best = out.strip().splitlines()[-1].split()
    assert int(float(epoch)) % 2 == 0 and float(best) > -19.5, out  # about -18.6


def check_custom(out, path):
    assert "ModelCheck" in out


# a block is recognised by a line it contains
CHECKS = {
    "n_warmup=500, beta=0.4": check_sampling,
    "hn.autosample(m, jax.random.key(0), n_samples=2000)": check_tempering,
    'checkpoint_dir="runs/rbm"': check_training,
    "negative=hn.CD(k=25)": check_quickstart,
    "class Ring(hn.EnergyModel)": check_custom,
    "centered=True,  # Melchior": check_recipes,
    "gibbs.step(jax.random.key(0), state, Ring()": check_core,
}


def test_every_check_finds_its_block():
    for marker in CHECKS:
        assert sum(marker in b for b in BLOCKS) == 1, marker


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs(i, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[i], str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    for marker, check in CHECKS.items():
        if marker in BLOCKS[i]:
            check(out, tmp_path)


def test_readme_commands_are_the_ci_commands():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest -q -n auto" in text and "python -m pytest -q -n auto" in ci
    assert "hamon-nnx demo" in text
