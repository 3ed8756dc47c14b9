"""``medsr server`` end to end on 127.0.0.1: real uvicorn, real worker processes, real clients
(``medsr run --server`` subprocesses and ``MedSRExtension.remote.ServerClient``)."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="medsr server needs the 'server' extra (fastapi, uvicorn, python-multipart)")
pytest.importorskip("uvicorn", reason="medsr server needs the 'server' extra")

from dicom_series import write_source_series  # noqa: E402
from medsr_server import ROOT, ServerProcess, alive, wait_for  # noqa: E402
from sample_volumes import mni_region  # noqa: E402

from MedSRExtension import load_volume, save_volume  # noqa: E402
from MedSRExtension.core.provenance import read_provenance  # noqa: E402
from MedSRExtension.remote import ServerClient, ServerError  # noqa: E402

ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210"
LIMIT_MB = 1


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("server-data"), [ALICE, BOB], "--jobs", "1", "--max-queue", "2",
                         "--max-upload-mb", str(LIMIT_MB), "--keep-hours", "1").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    volume = mni_region((8, 32, 32))  # oblique, anisotropic: thick slices along k
    save_volume(volume, folder / "slab.nii.gz")
    write_source_series(folder / "series", (volume.array * 1000).astype(np.int16), volume.spacing,
                        volume.origin, volume.direction)
    return folder


def _request(url: str, method: str, path: str, headers: dict, body: bytes = b""):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    conn.request(method, path, body=body or None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data.startswith(b"{") else data


ROUTES = [("GET", "/api/v1/server"), ("GET", "/api/v1/models"), ("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"),
          ("GET", "/api/v1/jobs/0123"), ("GET", "/api/v1/jobs/0123/result"), ("DELETE", "/api/v1/jobs/0123")]


def _one_line(payload) -> str:
    line = payload["error"]
    assert "\n" not in line and line
    return line


@pytest.mark.parametrize("header", [None, "Bearer not-the-token", "Basic YWxpY2U6eA=="])
def test_every_route_refuses_a_client_without_the_token(server, header):
    for method, path in ROUTES:
        status, payload = _request(server.url, method, path, {"Authorization": header} if header else {})
        assert status == 401, (method, path)
        assert "token" in _one_line(payload)


def test_the_token_is_checked_before_a_byte_of_the_body_is_read(server):
    parts = urlsplit(server.url)
    for token, status in ((None, 401), (ALICE, 413)):  # 50 MB announced, nothing sent: answered at once
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
        conn.putrequest("POST", "/api/v1/jobs")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(50 * 2**20))
        if token:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == status
        line = _one_line(json.loads(response.read()))
        assert ("token" in line) if status == 401 else ("over this server's limit of 1.0 MB" in line)
        conn.close()
    # a client that disconnects halfway through its upload does not stop the server
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(f"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: "
                  "multipart/form-data; boundary=x\r\nContent-Length: 5000\r\n\r\n--x\r\n".encode())
    assert ServerClient(server.url, ALICE).info()["max_upload_bytes"] == LIMIT_MB * 2**20


def test_oversize_upload_is_refused_in_one_line(server, tmp_path):
    big = tmp_path / "big.nrrd"
    big.write_bytes(b"\0" * (LIMIT_MB * 2**20 + 10))
    with pytest.raises(ServerError, match=r"over this server's limit of 1\.0 MB"):
        ServerClient(server.url, ALICE).submit(str(big), {"model": "bicubic"})
    # a streamed (chunked) body that grows past the limit is cut off as well
    import requests
    head = b'--x\r\nContent-Disposition: form-data; name="volume"; filename="a.nrrd"\r\n\r\n'
    chunks = (head if n == 0 else b"\0" * 65536 for n in range(LIMIT_MB * 16 + 4))
    response = requests.post(server.url + "/api/v1/jobs", data=chunks, timeout=20,
                             headers={"Authorization": f"Bearer {ALICE}", "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "limit" in _one_line(response.json())


def test_bad_input_is_refused_before_it_is_queued(server, tmp_path, inputs):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti at all")
    client = ServerClient(server.url, BOB)
    cases = [(broken, {"model": "bicubic"}, "broken.nii.gz"),
             (inputs / "slab.nii.gz", {"model": "bicubic", "colour": 1}, "unknown option"),
             (inputs / "slab.nii.gz", {"weights": "/etc/passwd"}, "weights must be 'auto' or 'random'"),
             (inputs / "slab.nii.gz", {"model": "bicubic", "scale": -2}, "scale")]
    for path, options, expected in cases:
        with pytest.raises(ServerError, match="HTTP 400") as caught:
            client.submit(str(path), options)
        assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert client._call("GET", "/jobs").json() == []


def _local_and_remote(inputs, out, name: str, *options: str) -> tuple[list, list]:
    local = [sys.executable, "-m", "MedSRExtension", "run", str(inputs / name), str(out / f"local-{name}.nrrd"), *options]
    remote = [*local[:5], str(out / f"remote-{name}.nrrd"), *options]
    return local, remote


def test_two_clients_at_once_get_the_local_results_bit_for_bit(server, inputs, tmp_path):
    jobs = {"slab.nii.gz": ("--model", "bicubic", "--mode", "throughplane", "--scale", "2.5"),
            "series": ("--model", "edsr", "--mode", "inplane", "--scale", "2")}
    commands = [_local_and_remote(inputs, tmp_path, name, *opts) for name, opts in jobs.items()]
    env = {"MEDSR_TOKEN": ALICE}
    clients = [subprocess.Popen([*remote, "--server", server.url, "--quiet"], cwd=ROOT, env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _, remote in commands]
    for local, _ in commands:
        done = subprocess.run([*local, "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
    for client in clients:
        _, err = client.communicate(timeout=240)
        assert client.returncode == 0, err
    for name in jobs:
        a, b = load_volume(tmp_path / f"local-{name}.nrrd"), load_volume(tmp_path / f"remote-{name}.nrrd")
        assert a.array.dtype == b.array.dtype and np.array_equal(a.array, b.array)
        assert a.spacing == b.spacing and a.origin == b.origin and np.array_equal(a.direction, b.direction)
        pa, pb = read_provenance(tmp_path / f"local-{name}.nrrd"), read_provenance(tmp_path / f"remote-{name}.nrrd")
        assert {k: v for k, v in pa.items() if k != "created"} == {k: v for k, v in pb.items() if k != "created"}
        assert pb["source"] == name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".medsr-")]  # nothing half-written


def test_the_confidence_map_comes_back_from_the_server_as_a_local_run_makes_it(server, inputs, tmp_path):
    options = ("--model", "pfmdn", "--mode", "throughplane", "--scale", "2")
    local, remote = _local_and_remote(inputs, tmp_path, "slab.nii.gz", *options)
    for command, name in ((local, "local"), (remote + ["--server", server.url], "remote")):
        done = subprocess.run([*command, "--confidence", str(tmp_path / f"{name}-confidence.nii.gz"), "--quiet"],
                              cwd=ROOT, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "MEDSR_TOKEN": ALICE})
        assert done.returncode == 0, done.stderr
    a, b = load_volume(tmp_path / "local-confidence.nii.gz"), load_volume(tmp_path / "remote-confidence.nii.gz")
    assert np.array_equal(a.array, b.array) and a.array.max() > 0
    assert np.allclose(a.spacing, b.spacing) and np.allclose(a.origin, b.origin)
    assert "confidence map" in read_provenance(tmp_path / "remote-confidence.nii.gz")["derived"]
    plain = ServerClient(server.url, ALICE).submit(str(inputs / "slab.nii.gz"), {"model": "nearest",
                                                                                  "mode": "throughplane"})
    state = ServerClient(server.url, ALICE).wait(plain["id"])
    assert state["confidence"] is False  # not asked for: none, and the route says how to ask
    with pytest.raises(ServerError, match="HTTP 404"):
        ServerClient(server.url, ALICE).download(plain["id"], str(tmp_path / "c.nrrd"), "confidence")


def test_a_job_belongs_to_the_token_that_made_it(server, inputs, tmp_path):
    alice, bob = ServerClient(server.url, ALICE), ServerClient(server.url, BOB)
    job = alice.submit(str(inputs / "slab.nii.gz"), {"model": "nearest", "mode": "inplane"})
    assert job["state"] == "queued"
    for call in (lambda: bob.state(job["id"]), lambda: bob.download(job["id"], str(tmp_path / "x.nrrd")),
                 lambda: bob.cancel(job["id"])):
        with pytest.raises(ServerError, match="HTTP 404"):
            call()
    assert alice.wait(job["id"])["state"] == "done"
    assert job["id"] not in [j["id"] for j in bob._call("GET", "/jobs").json()]


def _running_job(client: ServerClient):
    jobs = client._call("GET", "/jobs").json()
    return next((j["id"] for j in jobs if j["state"] == "running"), None)


def test_queue_limit_fifo_and_cancel(server, inputs, tmp_path):
    """A slow job (adaptation) from a CLI client; two queued; a third refused; Ctrl-C in the client
    cancels its job on the server and its worker process ends; the queue then moves on."""
    client = ServerClient(server.url, ALICE)
    out = tmp_path / "adapted.nrrd"
    slow = subprocess.Popen([sys.executable, "-m", "MedSRExtension", "run", str(inputs / "slab.nii.gz"), str(out),
                             "--model", "pfmdn", "--mode", "throughplane", "--adapt", "--quiet", "--server", server.url],
                            cwd=ROOT, env={**os.environ, "MEDSR_TOKEN": ALICE}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        slow_id = wait_for(lambda: _running_job(client), timeout=60)
        assert slow_id, "the adaptation job never started"
        pid = server.record(slow_id)["pid"]
        assert alive(pid)
        queued = [client.submit(str(inputs / "slab.nii.gz"), {"model": "nearest", "mode": "inplane"}) for _ in range(2)]
        assert [client.state(j["id"])["state"] for j in queued] == ["queued", "queued"]
        with pytest.raises(ServerError, match=r"the queue is full \(2 jobs waiting\).*HTTP 503"):
            client.submit(str(inputs / "slab.nii.gz"), {"model": "nearest"})
        assert client.cancel(queued[0]["id"])["state"] == "cancelled"
        slow.send_signal(signal.SIGINT)  # Ctrl-C in the client
        _, err = slow.communicate(timeout=60)
    finally:
        if slow.poll() is None:
            slow.kill()
    assert slow.returncode == 130, err
    assert wait_for(lambda: client.state(slow_id)["state"] == "cancelled", timeout=30)
    assert wait_for(lambda: not alive(pid), timeout=15), "the cancelled job's worker is still running"
    assert not out.exists()
    assert client.wait(queued[1]["id"])["state"] == "done"  # FIFO: the next one ran once the slot was free


def test_restart_keeps_finished_results_and_fails_unfinished_jobs(server, inputs, tmp_path):
    client = ServerClient(server.url, BOB)
    finished = client.submit(str(inputs / "slab.nii.gz"), {"model": "bicubic", "mode": "inplane"})
    client.wait(finished["id"])
    before = (tmp_path / "before.nrrd")
    client.download(finished["id"], str(before))
    slow = client.submit(str(inputs / "slab.nii.gz"), {"model": "pfmdn", "mode": "throughplane", "adapt": True})
    assert wait_for(lambda: client.state(slow["id"])["state"] == "running", timeout=60)
    pid = server.record(slow["id"])["pid"]
    server.kill()  # the server dies; its worker is left behind
    server.start()
    client = ServerClient(server.url, BOB)
    after = tmp_path / "after.nrrd"
    client.download(finished["id"], str(after))
    assert after.read_bytes() == before.read_bytes()
    state = client.state(slow["id"])
    assert state["state"] == "failed" and "server restarted" in state["message"]
    assert wait_for(lambda: not alive(pid), timeout=15), "the killed server's worker is still running"
    with pytest.raises(ServerError, match="is failed"):
        client.download(slow["id"], str(tmp_path / "none.nrrd"))


def test_a_new_token_is_written_for_its_owner_only_and_results_expire(tmp_path):
    """In-process, on real files: the token made when none is given, and the --keep-hours sweep."""
    import time

    from MedSRExtension.server.jobstore import JobStore
    from MedSRExtension.server.main import resolve_tokens
    from MedSRExtension.server.tokens import TOKEN_ENV, Guard, owner_key
    saved = os.environ.pop(TOKEN_ENV, None)
    try:
        tokens, made = resolve_tokens([], None, tmp_path)
    finally:
        if saved is not None:
            os.environ[TOKEN_ENV] = saved
    assert tokens == [made] and len(made) >= 32
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "token").read_text().strip() == made
    guard = Guard(None, tokens, 1)
    assert guard.owner_of(f"Bearer {made}".encode()) == owner_key(made)
    assert guard.owner_of(f"Bearer {made}x".encode()) is None and guard.owner_of(made.encode()) is None

    store = JobStore(tmp_path / "data", keep_hours=1)
    old, new = (store.new("o", "a.nii.gz", {}, None) for _ in range(2))
    for job in (old, new):
        store.add(job)
        store.finish(job, "done", "done")
    old.info["finished"] = time.time() - 2 * 3600
    store.save(old)
    assert store.expire() == 1
    assert not old.folder.exists() and new.folder.exists()
    assert [j.id for j in JobStore(tmp_path / "data", keep_hours=1).recover()] == [new.id]
