"""Runs in a worker process on a real slicer-core scene: a separate process, exact results, cancel,
a worker killed mid-run, bad input reported from the worker. (Timings are in ``make bench``.)"""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRExtension import MedSRError  # noqa: E402
from MedSRLib import nodes, process, selftest  # noqa: E402


def test_worker_result_equals_the_in_process_result(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    job, runner = process.start_superresolve(node, model="edsr", scale=2.0, device="cpu", mode="throughplane")
    assert runner.pid != os.getpid()
    assert runner.wait(120), "the worker did not finish"
    out = process.finish_superresolve(job, runner)
    expected = process.SuperResolveJob(node, model="edsr", scale=2.0, device="cpu", mode="throughplane").compute()
    assert np.array_equal(slicer.util.arrayFromVolume(out), expected.array)
    assert np.array_equal(nodes.world_ijk_to_ras(out), nodes.matrix_from_volume(expected))
    assert any("torch" in line for line in runner.log), runner.log
    assert runner.fraction == 1.0 and runner.folder is None


def test_cancel_ends_the_worker_and_adds_nothing(mrml_scene):
    selftest.check_cancel_leaves_scene_unchanged(mrml_scene)


def test_a_killed_worker_ends_the_run_with_an_error_and_the_scene_unchanged(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample())
    count = mrml_scene.GetNumberOfNodes()
    job, runner = process.start_superresolve(node, model="edsr", weights="random", preset="light", scale=2.0,
                                             device="cpu", batch=1)
    folder = runner.folder
    selftest.wait_for_first_batch(runner)
    assert not runner.done
    os.kill(runner.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    assert runner.wait(30), "a killed worker left the run hanging"
    with pytest.raises(MedSRError, match="killed by SIGKILL") as caught:
        process.finish_superresolve(job, runner)
    assert "Last log lines" in str(caught.value) and "\n" not in str(caught.value)
    assert mrml_scene.GetNumberOfNodes() == count
    assert not os.path.exists(folder)


def test_bad_input_is_reported_from_the_worker_in_one_line(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    count = mrml_scene.GetNumberOfNodes()
    job, runner = process.start_superresolve(node, model="bicubic", scale=0.5, device="cpu")
    assert runner.wait(60)
    with pytest.raises(MedSRError, match="scale") as caught:
        process.finish_superresolve(job, runner)
    assert "\n" not in str(caught.value) and runner.returncode == 2
    assert mrml_scene.GetNumberOfNodes() == count


def test_progress_callback_runs_on_the_polling_thread(mrml_scene):
    import threading
    node = selftest.add_oblique_node(mrml_scene)
    seen = []
    job, runner = process.start_superresolve(node, model="linear", scale=2.0, device="cpu", batch=2,
                                             progress=lambda d, t: seen.append((d, t, threading.get_ident())))
    assert runner.wait(60)
    process.finish_superresolve(job, runner)
    assert seen and seen[-1][:2] == (4, 4)  # 8 slices in batches of 2
    assert {ident for *_, ident in seen} == {threading.get_ident()}
