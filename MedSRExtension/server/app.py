"""The FastAPI routes of ``medsr server`` (every one behind ``tokens.Guard``).

- ``GET  /api/v1/server``: version and limits; ``GET /api/v1/models``: the catalog (``medsr models --json``);
- ``POST /api/v1/jobs``: multipart ``volume`` + ``options`` (JSON) -> 201 {"id", "state": "queued"};
- ``GET  /api/v1/jobs``: the caller's jobs; ``GET /api/v1/jobs/{id}``: state, fraction, message, log;
- ``GET  /api/v1/jobs/{id}/result``: the result as NRRD with MedSR's provenance;
- ``DELETE /api/v1/jobs/{id}``: cancel (the worker process ends within seconds).

Every refusal is ``{"error": "<one line>"}``; another token's job answers 404, as an unknown one does.
"""
from __future__ import annotations

import shutil
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from MedSRExtension.core.errors import MedSRError

from . import uploads
from .jobstore import FINISHED, JobStore
from .scheduler import Scheduler
from .tokens import BodyTooLarge

API = "/api/v1"
MAX_OPTIONS_BYTES = 64 * 1024


def _error(status: int, line: str) -> JSONResponse:
    return JSONResponse({"error": line}, status_code=status)


def _no_job(job_id: str) -> JSONResponse:
    return _error(404, f"no job {job_id} for this token; list yours with GET {API}/jobs")


def build_app(store: JobStore, scheduler: Scheduler, max_upload: int) -> FastAPI:
    """The routes over ``store`` and ``scheduler``; wrap the result in ``tokens.Guard``."""
    app = FastAPI(title="MedSR server", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    _add_info_routes(app, store, scheduler, max_upload)
    _add_job_routes(app, store, scheduler)
    _add_file_routes(app, store)
    return app


def _add_info_routes(app: FastAPI, store: JobStore, scheduler: Scheduler, max_upload: int) -> None:
    """What the server offers: its limits and its models."""
    @app.get(API + "/server")
    def server_info() -> dict:
        from MedSRExtension import __version__
        return {"medsr_version": __version__, "max_upload_bytes": max_upload, "max_queue": scheduler.max_queue,
                "jobs_at_once": scheduler.slots, "queued": len(store.queued())}

    @app.get(API + "/models")
    def models() -> list:
        from MedSRExtension.zoo.catalog import list_models
        return list_models()


def _add_job_routes(app: FastAPI, store: JobStore, scheduler: Scheduler) -> None:
    """Submit, list, follow and cancel jobs (each seen only by the token that made it)."""
    @app.post(API + "/jobs")
    async def submit(request: Request):
        if scheduler.queue_full():
            return _error(503, f"the queue is full ({scheduler.max_queue} jobs waiting); try again later")
        try:
            form = await request.form(max_files=1, max_fields=2, max_part_size=MAX_OPTIONS_BYTES)
        except BodyTooLarge as exc:
            return _error(413, str(exc))
        except HTTPException as exc:
            return _error(400, f"the upload could not be read ({exc.detail}); send multipart fields 'volume' and 'options'")
        try:
            volume, options = form.get("volume"), form.get("options")
            if not isinstance(volume, UploadFile):
                return _error(400, "no 'volume' file in the upload; send multipart fields 'volume' (a file) and 'options' (JSON)")
            return await run_in_threadpool(_create, store, scheduler, request.state.owner, volume, options)
        finally:
            await form.close()

    @app.get(API + "/jobs")
    def list_jobs(request: Request) -> list:
        with store.lock:
            mine = [j for j in store.jobs.values() if j.info.get("owner") == request.state.owner]
            return [{k: j.public()[k] for k in ("id", "state", "fraction", "created", "source")}
                    for j in sorted(mine, key=lambda j: j.info["created"])]

    @app.get(API + "/jobs/{job_id}")
    def job_state(job_id: str, request: Request):
        job = store.get(job_id, request.state.owner)
        if job is None:
            return _no_job(job_id)
        with store.lock:
            return job.public()

    @app.delete(API + "/jobs/{job_id}")
    def cancel(job_id: str, request: Request):
        job = store.get(job_id, request.state.owner)
        if job is None:
            return _no_job(job_id)
        if job.state not in FINISHED:
            scheduler.cancel(job)
        with store.lock:
            return {"id": job.id, "state": "cancelling" if job.state == "running" else job.state}


def _add_file_routes(app: FastAPI, store: JobStore) -> None:
    """A finished job's files: its result and its confidence map."""
    def finished_file(job_id: str, request: Request, what: str):
        """The job, when its ``what`` may be served now; else the error response to send."""
        job = store.get(job_id, request.state.owner)
        if job is None:
            return None, _no_job(job_id)
        if job.state != "done":
            return None, _error(409, f"job {job_id} is {job.state}; the {what} is served once its state is done")
        return job, None

    @app.get(API + "/jobs/{job_id}/result")
    def job_result(job_id: str, request: Request):
        job, refusal = finished_file(job_id, request, "result")
        if refusal is not None:
            return refusal
        name = _result_name(job.info.get("source"))
        return FileResponse(job.result_path, media_type="application/octet-stream", filename=name)

    @app.get(API + "/jobs/{job_id}/confidence")
    def job_confidence(job_id: str, request: Request):
        job, refusal = finished_file(job_id, request, "confidence map")
        if refusal is not None:
            return refusal
        if not job.confidence_path.is_file():
            return _error(404, f"job {job_id} has no confidence map; submit a through-plane run with "
                               "\"confidence\": true")
        name = _result_name(job.info.get("source")).replace("_medsr.nrrd", "_medsr_confidence.nrrd")
        return FileResponse(job.confidence_path, media_type="application/octet-stream", filename=name)


def _result_name(source: Optional[str]) -> str:
    stem = str(source or "result")
    for suffix in uploads.VOLUME_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{stem}_medsr.nrrd"


def _create(store: JobStore, scheduler: Scheduler, owner: str, volume: UploadFile, options: Optional[str]):
    """Check and queue one upload (runs on a worker thread: reading a volume takes time)."""
    job = None
    try:
        parsed = uploads.parse_options(options if isinstance(options, str) else None)
        name, _ = uploads.upload_name(volume.filename)
        job = store.new(owner, source="", options=parsed, chosen=None)
        source = uploads.save_upload(volume.file, name, job.folder / "upload")
        job.info["source"] = source.name
        run_options, chosen = uploads.prepare(source, parsed, job.work)
        shutil.rmtree(job.folder / "upload", ignore_errors=True)  # the worker reads its request only
        job.info.update(options=run_options, chosen=chosen)
        if scheduler.queue_full():  # others were queued while this upload was read
            shutil.rmtree(job.folder, ignore_errors=True)
            return _error(503, f"the queue is full ({scheduler.max_queue} jobs waiting); try again later")
        scheduler.submit(job)
        return JSONResponse({"id": job.id, "state": "queued", "chosen": chosen}, status_code=201)
    except MedSRError as exc:
        if job is not None:
            shutil.rmtree(job.folder, ignore_errors=True)
        return _error(400, str(exc))
    except BaseException:
        if job is not None:
            shutil.rmtree(job.folder, ignore_errors=True)
        raise
