"""Training on real corpus patches: the loss goes down, resume equals an uninterrupted run, EMA export."""
import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models.registry import build
from MedSRExtension.training import TrainConfig, train
from MedSRExtension.training.trainer import learning_rate


def _cfg(out, **kw):
    base = dict(model="edsr", out=str(out), preset="light", iters=8, batch=2, patch=12, lr=1e-3, warmup=2,
                ckpt_every=2, log_every=1, val_every=4, val_crop=48, threads=1, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def _losses(out):
    with open(out / "log.csv", encoding="utf-8") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_a_few_iterations_on_corpus_patches_lower_the_loss(tmp_path):
    torch.set_num_threads(1)
    train(_cfg(tmp_path, iters=40, batch=4, val_every=40, ckpt_every=40), progress=False)
    losses = _losses(tmp_path)
    assert len(losses) == 40
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    # the untrained residual branch adds noise to bicubic; 40 steps must clearly remove it
    assert last < 0.6 * first, (first, last)


def test_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    straight, interrupted = tmp_path / "a", tmp_path / "b"
    train(_cfg(straight), progress=False)
    train(_cfg(interrupted), progress=False, stop_after=4)
    with pytest.raises(MedSRError, match="--resume"):
        train(_cfg(interrupted), progress=False)  # never silently restarts over a run
    train(_cfg(interrupted), resume=True, progress=False)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(interrupted / "checkpoint.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"]["shadow"][k], b["ema"]["shadow"][k]), k
    assert _losses(straight) == _losses(interrupted)  # the log is continued, not duplicated


def test_ema_weights_differ_from_raw_and_are_exported(tmp_path):
    torch.set_num_threads(1)
    summary = train(_cfg(tmp_path, iters=6), progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    exported = load_file(str(tmp_path / "ema.safetensors"))
    assert set(exported) == set(state["model"])
    assert all(torch.equal(exported[k], state["ema"]["shadow"][k]) for k in exported)
    assert any(not torch.equal(exported[k], state["model"][k]) for k in exported)
    net = build("edsr", "light", 2)
    net.load_state_dict(exported)  # strict: a deployable network
    assert summary["parameters"] == sum(p.numel() for p in net.parameters())
    assert np.isfinite(summary["last_val_psnr"]) and summary["sec_per_iter"] > 0


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(model="edsr", out="unused", iters=100, lr=1e-3, min_lr=1e-6, warmup=10)
    lrs = [learning_rate(cfg, i) for i in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 1e-5


def test_classical_models_cannot_be_trained(tmp_path):
    with pytest.raises(MedSRError, match="nothing to train"):
        train(_cfg(tmp_path, model="bicubic"), progress=False)


# --- the pieces of train(), each on its own --------------------------------------------------------

def test_resume_refuses_changed_settings_and_a_fresh_start_refuses_an_existing_run(tmp_path):
    from MedSRExtension.training.trainer import check_resume
    train(_cfg(tmp_path, iters=2, ckpt_every=2, val_every=2), progress=False)
    with pytest.raises(MedSRError, match="different batch"):
        check_resume(_cfg(tmp_path, batch=3), resume=True)
    with pytest.raises(MedSRError, match="already holds a training run"):
        check_resume(_cfg(tmp_path), resume=False)
    check_resume(_cfg(tmp_path, iters=50), resume=True)  # a longer schedule is allowed
    with pytest.raises(MedSRError, match="different thickness"):
        check_resume(_cfg(tmp_path, thickness=[0.2, 0.7]), resume=True)


def test_a_thin_slice_run_records_its_thickness_and_validates_on_it(tmp_path):
    import json
    from MedSRExtension.training.trainer import Validator
    cfg = _cfg(tmp_path, model="pfmdn", scales=[[3.0, 1.0]], degradation="thickslice", thickness=[0.2, 0.6],
               iters=2, ckpt_every=2, val_every=2)
    train(cfg, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["thickness"] == [0.2, 0.6]
    assert cfg.val_thickness() == pytest.approx(0.4)
    thin, contiguous = Validator(cfg).items[0], Validator(_cfg(tmp_path, scales=[[3.0, 1.0]], degradation="thickslice")).items[0]
    assert np.array_equal(thin.hr, contiguous.hr) and not np.allclose(thin.lr, contiguous.lr)
    with pytest.raises(MedSRError, match="for the thickslice degradation"):
        train(_cfg(tmp_path / "bad", thickness=[0.2, 0.6]), progress=False)


def test_a_train_step_lowers_the_loss_on_a_fixed_batch_and_state_round_trips(tmp_path):
    from MedSRExtension.models import ModelDescriptor
    from MedSRExtension.models.losses import loss_for
    from MedSRExtension.training.trainer import TrainState, new_state, train_step
    cfg = _cfg(tmp_path, lr=2e-3)
    state = new_state(cfg, torch.device("cpu"), None)
    net = ModelDescriptor.of("edsr", state.model)
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 1, 24, 24, generator=g)
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    losses = [train_step(net, state, loss_for("edsr"), lr, hr, (2.0, 2.0), cfg, None, i)[0] for i in range(15)]
    assert losses[-1] < losses[0]
    state.iteration = 15
    saved = state.checkpoint()
    other = new_state(cfg, torch.device("cpu"), None)
    other.restore(saved)
    assert other.iteration == 15
    for a, b in zip(state.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)
    assert isinstance(other, TrainState)


def test_the_csv_log_writes_its_header_once_across_resumes(tmp_path):
    from MedSRExtension.training.trainer import CsvLog, LossWindow
    window = LossWindow()
    window.add(1.0, {"l1": 0.5})
    window.add(3.0, {"l1": 1.5})
    assert window.means() == {"loss": 2.0, "l1": 1.0}
    path = str(tmp_path / "log.csv")
    CsvLog(path).write({"iter": 1, **window.means()})
    CsvLog(path).write({"iter": 2, **window.means()})  # a resumed run opens a new log on the same file
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["iter", "loss", "l1"] and [r[0] for r in rows[1:]] == ["1", "2"]
