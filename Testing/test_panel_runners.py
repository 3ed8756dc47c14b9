"""The panel and the Logic's background run take any ``worker.runner.Runner``: driven with the real
in-process runner (the engine on a thread of this process, no worker process) the panel's run sequence
shows progress, makes the result node and cancels exactly as with a worker process; the Logic's
scripted run follows the same sequence (``run_sequence.start_single`` + ``follow``) on a real scene."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRExtension.core.errors import Cancelled  # noqa: E402
from MedSRExtension.worker.in_process import InProcessRunner  # noqa: E402
from MedSRExtension.worker.runner import Runner, WorkerRunner  # noqa: E402
from MedSRLib import process, run_sequence, selftest  # noqa: E402
from MedSRLib.panel import PanelParameters, State, SuperResolvePanel  # noqa: E402
from MedSRLib.remote_run import RemoteRunner  # noqa: E402


def _one_slice_per_batch(volume, options, progress):
    """The in-process runner with batches of one slice, so a run reports many batches."""
    return InProcessRunner(volume, {**options, "batch": 1}, progress)


def _poll(p: SuperResolvePanel, timeout: float = 120.0, until=None) -> None:
    deadline = time.monotonic() + timeout
    while p.poll() and not (until is not None and until()):
        assert time.monotonic() < deadline, f"the panel is still {p.state} after {timeout} s"
        time.sleep(0.02)


def test_every_runner_satisfies_the_runner_protocol(mrml_scene):
    volume = selftest.sample_volume()
    runners = [WorkerRunner(volume, {}), InProcessRunner(volume, {}),
               RemoteRunner(volume, {}, "http://127.0.0.1:9", "token", "name")]
    assert all(isinstance(r, Runner) for r in runners)
    assert not any(r.done for r in runners)  # nothing starts before start()


def test_the_panel_runs_in_process_and_makes_the_same_node_as_the_engine(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    params = PanelParameters(inputVolume=node, model="bicubic", scale=2.0, device="cpu", showSideBySide=False)
    p = SuperResolvePanel(params, mrml_scene, runner_factory=InProcessRunner)
    assert p.apply() == State.RUNNING and p.button().text == "Cancel"
    assert isinstance(p.steps[0].runner, InProcessRunner)
    _poll(p)
    assert p.state == State.DONE, p.status
    out = p.outcome.output_node
    assert p.status == f"Created '{out.GetName()}'." and mrml_scene.GetNodeByID(out.GetID()) is out
    expected = process.SuperResolveJob(node, model="bicubic", scale=2.0, device="cpu").compute()
    assert np.array_equal(slicer.util.arrayFromVolume(out), expected.array)
    assert p.progress_percent == 100
    assert any(f"in-process run (pid {os.getpid()})" in line for line in p.log), p.log
    assert any("started" in line and "thread of this process" in line for line in p.log), p.log


def test_the_panel_shows_in_process_progress_and_cancels_leaving_the_scene_as_it_was(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample(slices=24, size=96))
    count = mrml_scene.GetNumberOfNodes()
    params = PanelParameters(inputVolume=node, model="edsr", scale=2.0, device="cpu")
    p = SuperResolvePanel(params, mrml_scene, runner_factory=_one_slice_per_batch)
    p.apply()
    runner = p.steps[0].runner
    _poll(p, until=lambda: runner.progress[0] >= 2)
    done, total = runner.progress
    assert p.state == State.RUNNING and 0 < done < total, (p.state, done, total)
    assert 0 < p.progress_percent < 100 and "edsr" in p.status and str(total) in p.status, p.status
    assert p.apply() == State.CANCELLING
    _poll(p, timeout=60)
    assert p.state == State.IDLE and p.status == "Cancelled: nothing was added to the scene."
    assert isinstance(runner.error, Cancelled) and runner.result is None
    assert mrml_scene.GetNumberOfNodes() == count and p.outcome.output_node is None


def _drain(ticks: list, timeout: float = 120.0) -> None:
    """Call what ``follow`` scheduled, as a QTimer would, until nothing is scheduled."""
    deadline = time.monotonic() + timeout
    while ticks:
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.02)
        ticks.pop(0)()


def test_the_logic_background_run_follows_the_run_sequence_to_its_node(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    ticks, ended, seen = [], [], []
    run = run_sequence.start_single(node, model="bicubic", scale=2.0, device="cpu",
                                    progress=lambda done, total: seen.append((done, total)))
    assert isinstance(run.steps[0].runner, WorkerRunner)  # the default: a worker process
    run_sequence.follow(run, ticks.append, lambda out, error: ended.append((out, error)))
    _drain(ticks)
    [(out, error)] = ended
    assert error is None and out.GetName() == "MedSRTestInput_SR2x_bicubic"
    assert mrml_scene.GetNodeByID(out.GetID()) is out and seen and seen[-1][0] == seen[-1][1]


def test_a_cancelled_logic_run_ends_with_cancelled_and_adds_nothing(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample(slices=24, size=96))
    count = mrml_scene.GetNumberOfNodes()
    ticks, ended = [], []
    run = run_sequence.start_single(node, model="edsr", scale=2.0, device="cpu", runner_factory=_one_slice_per_batch)
    run_sequence.follow(run, ticks.append, lambda out, error: ended.append((out, error)))
    selftest.wait_for_first_batch(run.steps[0].runner)
    run.steps[0].runner.cancel()  # what the Logic returns to its caller
    _drain(ticks, timeout=60)
    [(out, error)] = ended
    assert out is None and isinstance(error, Cancelled)
    assert mrml_scene.GetNumberOfNodes() == count


def test_the_panel_takes_its_messages_from_the_inference_options(mrml_scene):
    from MedSRExtension.core.errors import MedSRError
    from MedSRExtension.inference.options import InferenceOptions
    node = selftest.add_oblique_node(mrml_scene)
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", mode="throughplane", adapt=True),
                          mrml_scene)
    with pytest.raises(MedSRError) as refused:
        InferenceOptions(model="edsr", mode="throughplane", adapt=True)
    assert p.validation_message() == str(refused.value) and not p.button().enabled
    p.params.adapt, p.params.tileSize = False, -1
    with pytest.raises(MedSRError) as refused:
        InferenceOptions(tile=-1)
    assert p.validation_message() == str(refused.value)
