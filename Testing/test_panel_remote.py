"""The panel's "Run on: MedSR server" driven through the panel model (MedSRLib.panel) on a real
slicer-core scene against a real ``medsr server`` on 127.0.0.1: the result node equals a local run's
bit for bit with the same provenance, Cancel cancels the job on the server, and a wrong token, a bad
URL or an unreachable server is refused in one line with nothing added. The token never shows."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")
pytest.importorskip("fastapi", reason="medsr server needs the 'server' extra (fastapi, uvicorn, python-multipart)")
pytest.importorskip("uvicorn", reason="medsr server needs the 'server' extra")

from medsr_server import ServerProcess, alive, wait_for  # noqa: E402

from MedSRExtension.remote import ServerClient  # noqa: E402
from MedSRLib import nodes, selftest  # noqa: E402
from MedSRLib.panel import Button, PanelParameters, State, SuperResolvePanel  # noqa: E402

TOKEN = "panel-remote-token-5f3a9c1e7b"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("server-data"), [TOKEN], "--jobs", "1").start()
    yield proc
    proc.stop()


def _poll_until_idle(p: SuperResolvePanel, timeout: float = 180.0) -> set:
    """Poll as the widget's timer does; the states seen on the way."""
    seen = {p.state}
    deadline = time.monotonic() + timeout
    while p.poll():
        seen.add(p.state)
        assert time.monotonic() < deadline, f"the panel is still {p.state} after {timeout} s"
        time.sleep(0.05)
    return seen


def _remote_panel(scene, node, url: str, token: str = TOKEN, **params) -> SuperResolvePanel:
    p = SuperResolvePanel(PanelParameters(inputVolume=node, device="cpu", showSideBySide=False, **params), scene)
    p.run_on, p.server_url, p.token = "server", url, token
    return p


def _matrix(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _scene_xml(scene) -> str:
    scene.SetSaveToXMLString(1)
    scene.Commit()
    return scene.GetSceneXMLString()


def _no_token_anywhere(p: SuperResolvePanel, scene, token: str = TOKEN) -> None:
    assert token not in p.status and not [line for line in p.log if token in line]
    assert token not in repr(vars(p.params)) and token not in _scene_xml(scene)


@pytest.mark.parametrize("model", ["bicubic", "edsr"])
def test_a_server_run_makes_the_node_a_local_run_makes(mrml_scene, server, model):
    node = selftest.add_oblique_node(mrml_scene)  # oblique, 0.9 x 1.1 x 3.3 mm
    params = dict(model=model, scale=2.0, mode="inplane")
    local = SuperResolvePanel(PanelParameters(inputVolume=node, device="cpu", showSideBySide=False, **params),
                              mrml_scene)
    local.apply()
    _poll_until_idle(local)
    assert local.state == State.DONE, local.status

    p = _remote_panel(mrml_scene, node, server.url, **params)
    assert p.validation_message() is None and p.server_fields_visible
    assert p.apply() == State.QUEUED and p.button().text == "Cancel" and p.progress_visible
    seen = _poll_until_idle(p)
    assert p.state == State.DONE, p.status
    assert State.QUEUED in seen and p.status == f"Created 'MedSRTestInput_SR2x_{model}'."
    a, b = local.outcome.output_node, p.outcome.output_node
    assert a is not b and b.GetName() == a.GetName()
    assert np.array_equal(_matrix(a), _matrix(b))  # exact geometry, oblique and anisotropic
    va, vb = slicer.util.arrayFromVolume(a), slicer.util.arrayFromVolume(b)
    assert va.dtype == vb.dtype and va.shape == vb.shape and np.array_equal(va, vb)  # bit for bit
    pa, pb = nodes.provenance_of(a), nodes.provenance_of(b)
    assert {k: v for k, v in pa.items() if k != "created"} == {k: v for k, v in pb.items() if k != "created"}
    assert pb["source"] == "MedSRTestInput" and pb["device"] == "cpu"
    assert any("sends it to the MedSR server" in line for line in p.log)
    assert any(line.startswith(f"[{model}] server: ") for line in p.log)  # the server's own log lines
    _no_token_anywhere(p, mrml_scene)
    job = ServerClient(server.url, TOKEN).state(p.steps[0].runner.job_id)
    assert job["state"] == "done" and job["source"] == "MedSRTestInput.mha"


def test_a_server_run_brings_back_the_confidence_map_a_local_run_makes(mrml_scene, server):
    node = selftest.add_oblique_node(mrml_scene)
    params = dict(model="pfmdn", scale=2.0, mode="throughplane", axis="k", confidence=True)
    local = SuperResolvePanel(PanelParameters(inputVolume=node, device="cpu", showSideBySide=False, **params),
                              mrml_scene)
    local.apply()
    _poll_until_idle(local)
    p = _remote_panel(mrml_scene, node, server.url, **params)
    p.apply()
    _poll_until_idle(p)
    assert local.state == p.state == State.DONE, (local.status, p.status)
    a, b = local.outcome.confidence_node, p.outcome.confidence_node
    assert a is not None and b is not None and b.GetName() == f"{p.outcome.output_node.GetName()} confidence"
    assert np.array_equal(_matrix(a), _matrix(b))
    assert np.array_equal(slicer.util.arrayFromVolume(a), slicer.util.arrayFromVolume(b))


def test_cancel_cancels_the_job_on_the_server_and_adds_nothing(mrml_scene, server):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample(slices=32, size=96))
    count = mrml_scene.GetNumberOfNodes()
    p = _remote_panel(mrml_scene, node, server.url, model="edsr", scale=2.0, mode="inplane")
    p.apply()
    runner = p.steps[0].runner
    with open(f"/proc/{runner.pid}/cmdline", "rb") as f:
        assert TOKEN.encode() not in f.read()  # the token travels in the environment only
    selftest.wait_for_first_batch(runner, poll=p.poll)
    assert runner.job_id and runner.remote_state == "running", p.status
    p.poll()
    assert p.state == State.RUNNING and p.status.startswith("edsr: batch ")
    pid = server.record(runner.job_id)["pid"]
    assert p.apply() == State.CANCELLING
    assert p.button() == Button("Cancelling...", False, "Stopping the worker process")
    _poll_until_idle(p, timeout=40)
    assert p.state == State.IDLE and p.status == "Cancelled: nothing was added to the scene."
    assert mrml_scene.GetNumberOfNodes() == count and p.outcome.output_node is None
    assert any(f"job {runner.job_id} cancelled on the server" in line for line in p.log)
    client = ServerClient(server.url, TOKEN)
    assert wait_for(lambda: client.state(runner.job_id)["state"] == "cancelled", timeout=30)
    assert wait_for(lambda: not alive(pid), timeout=15), "the server's worker still runs after Cancel"


def test_a_wrong_token_is_refused_in_one_line_and_adds_nothing(mrml_scene, server):
    node = selftest.add_oblique_node(mrml_scene)
    count = mrml_scene.GetNumberOfNodes()
    wrong = "not-the-token-8d2e41"
    p = _remote_panel(mrml_scene, node, server.url, token=wrong, model="bicubic", scale=2.0)
    p.apply()
    _poll_until_idle(p, timeout=60)
    assert p.state == State.FAILED
    assert p.status == (f"Failed: the MedSR server at {server.url} refused the token (HTTP 401); enter the token "
                        "the server printed or its administrator gave you")
    assert mrml_scene.GetNumberOfNodes() == count and p.outcome.output_node is None
    _no_token_anywhere(p, mrml_scene, wrong)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_server_settings_are_refused_before_a_run_and_an_unreachable_server_after(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    count = mrml_scene.GetNumberOfNodes()
    p = _remote_panel(mrml_scene, node, "", model="bicubic", scale=2.0)
    assert p.run_on_items() == [("this computer", "local"), ("MedSR server", "server")]
    assert p.device_line() == "The MedSR server's device (its GPU when it has one)"
    cases = {"": "Enter the MedSR server's URL", "gpu.hospital.local": "is not a server URL",
             "ftp://gpu.hospital.local": "is not a server URL", "http://:8600": "is not a server URL",
             "http://gpu.hospital.local:99999": "is not a server URL"}
    for url, expected in cases.items():
        p.server_url = url
        assert expected in p.validation_message() and not p.button().enabled
        assert p.apply() == State.IDLE and expected in p.status and "\n" not in p.status
    p.server_url, p.token = "http://127.0.0.1:8600", " "
    assert p.validation_message().startswith("Enter the MedSR server's token")
    p.token, p.params.customWeights = TOKEN, "/somewhere/mine.safetensors"
    assert p.validation_message().startswith("Custom weights are not sent to a MedSR server")
    p.params.customWeights = ""
    p.run_on = "local"
    assert p.validation_message() is None and not p.server_fields_visible  # the server fields do not apply

    p.run_on, p.server_url = "server", f"http://127.0.0.1:{_closed_port()}"
    p.apply()
    _poll_until_idle(p, timeout=60)
    assert p.state == State.FAILED and "cannot be reached" in p.status and "\n" not in p.status
    assert mrml_scene.GetNumberOfNodes() == count


def test_the_nodes_slice_thickness_travels_to_the_server_with_the_run_options():
    """The MHA upload of a node cannot carry its slice thickness: the remote worker sends it as the
    run's thickness_mm, so the server reads the weights a local run reads instead of estimating."""
    from MedSRExtension.core.volume import Volume
    from MedSRExtension.remote.worker import with_header_thickness
    thin = Volume(np.zeros((6, 8, 8), np.float32), (1.0, 1.0, 3.3), (0.0, 0.0, 0.0), np.eye(3),
                  {"thickness_ijk": (None, None, 1.0)})
    through = {"model": "pfmdn", "scale": 2.0, "mode": "throughplane", "axis": "auto"}
    assert with_header_thickness(thin, through)["thickness_mm"] == 1.0
    assert with_header_thickness(thin, {**through, "thickness_mm": 2.0})["thickness_mm"] == 2.0  # the user's wins
    assert "thickness_mm" not in with_header_thickness(thin, {**through, "mode": "inplane"})
    unknown = Volume(thin.array, thin.spacing, thin.origin, thin.direction, {})
    assert "thickness_mm" not in with_header_thickness(unknown, through)
