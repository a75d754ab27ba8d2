"""Training checkpoints: a run killed with SIGKILL and resumed ends bit-identical."""

import os
import signal
import subprocess
import sys

import numpy as np
import optax
import pytest
from flax import nnx

import hamon_nnx as hn

CHILD = r"""
import sys, numpy as np, optax, hamon_nnx as hn
from flax import nnx
out, ckpt, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
steps_per_call = None if sys.argv[4] == "auto" else int(sys.argv[4])
data = np.tile(hn.data.bars_and_stripes(3), (6, 1))
rbm = hn.RBM(9, 6, rngs=nnx.Rngs(0), init_scale=0.1)
report = lambda trainer, step, loss: print(step, flush=True)
trainer = hn.Trainer(rbm, optax.adam(0.03), negative=hn.PCD(16), checkpoint_dir=ckpt or None,
                     checkpoint_every=4, seed=3, step_callbacks=[report], progress=False,
                     steps_per_call=steps_per_call)
trainer.fit(data, epochs=10, batch_size=14, resume=resume)
np.save(out, np.asarray(rbm.W[...]))
"""


def child(tmp_path, out, ckpt="", resume=False, steps_per_call="auto"):
    args = [str(tmp_path / out), ckpt, "1" if resume else "0", steps_per_call]
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("steps_per_call", "first"), [("auto", 25), ("3", 27)], ids=["every-step", "chunks-of-3"]
)
def test_sigkill_mid_training_then_resume_is_bit_identical(tmp_path, steps_per_call, first):
    """Chunks of 3 end at 3, 4, 6, 8, 9, 12, ... (checkpoints every 4 steps):
    the resumed run starts at the checkpoint of step 24 and reports at 27."""
    reference = child(tmp_path, "reference.npy")
    ckpt = str(tmp_path / "ckpt")
    victim = child(tmp_path, "victim.npy", ckpt, steps_per_call=steps_per_call)
    for line in victim.stdout:
        if int(line) >= 27:  # past the checkpoint at step 24, before the one at 28
            os.kill(victim.pid, signal.SIGKILL)
            break
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "victim.npy").exists()
    resumed = child(tmp_path, "victim.npy", ckpt, resume=True, steps_per_call=steps_per_call)
    steps = [int(line) for line in resumed.stdout]
    assert resumed.wait() == 0 and reference.wait() == 0
    assert steps[0] == first, "the resumed run continues after the last checkpoint"
    np.testing.assert_array_equal(
        np.load(tmp_path / "victim.npy"), np.load(tmp_path / "reference.npy")
    )


def make_trainer(path, **kw):
    rbm = hn.RBM(4, 3, rngs=nnx.Rngs(0), init_scale=0.1)
    return hn.Trainer(rbm, optax.adam(0.05), negative=hn.PCD(8), checkpoint_dir=path,
                      checkpoint_every=3, progress=False, **kw)  # fmt: skip


def test_max_to_keep_and_resume_at_an_epoch_boundary(tmp_path):
    data = np.tile(np.eye(4, dtype=np.int8), (6, 1))
    first = make_trainer(tmp_path / "c", max_to_keep=2)
    first.fit(data, epochs=2, batch_size=4)
    assert sorted(int(p) for p in os.listdir(tmp_path / "c") if p.isdigit()) == [9, 12]
    second = make_trainer(tmp_path / "c", max_to_keep=2)
    second.fit(data, epochs=4, batch_size=4, resume=True)
    reference = make_trainer(None)
    reference.fit(data, epochs=4, batch_size=4)
    np.testing.assert_array_equal(
        np.asarray(second.model.W[...]), np.asarray(reference.model.W[...])
    )
    assert second.history["loss"] == pytest.approx(reference.history["loss"])


def test_damaged_checkpoint_is_a_clear_error_and_older_ones_survive(tmp_path):
    data = np.tile(np.eye(4, dtype=np.int8), (6, 1))
    make_trainer(tmp_path / "c").fit(data, epochs=2, batch_size=4)
    latest = tmp_path / "c" / "12"
    for root, _, files in os.walk(latest / "state"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    with pytest.raises(ValueError, match="corrupted or incompatible training checkpoint"):
        make_trainer(tmp_path / "c").fit(data, epochs=3, batch_size=4, resume=True)
    assert (tmp_path / "c" / "9").exists()


def test_resume_without_a_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="needs a checkpoint_dir"):
        make_trainer(None).fit(np.eye(4, dtype=np.int8), epochs=1, batch_size=2, resume=True)
    # an empty folder simply starts from scratch
    fresh = make_trainer(tmp_path / "empty")
    fresh.fit(np.eye(4, dtype=np.int8), epochs=1, batch_size=2, resume=True)
    assert fresh.step == 2
