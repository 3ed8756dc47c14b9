"""``medsr server``: the HTTP inference service a hospital runs on its GPU machine.

Slicer, ``medsr run --server`` and scripts (``MedSRExtension.remote``) send a volume and options; the
server queues the job, runs it in MedSR's worker process (``MedSRExtension.worker.serve``, the same
protocol Slicer uses), and serves the result as NRRD with MedSR's provenance. Modules:

- ``tokens``: the access tokens and the ASGI guard that checks them (and the upload size) before a
  byte of the body is read;
- ``jobstore``: the jobs on disk (state, owner, result), what a restart finds, expiry;
- ``worker_job``: one job's worker process (start, events, cancel, result);
- ``scheduler``: the FIFO queue, ``--jobs`` at a time;
- ``uploads``: an upload read and checked into a worker request (400 before queueing);
- ``app``: the FastAPI routes; ``main``: build and run it with uvicorn.

FastAPI, uvicorn and python-multipart come with the ``server`` extra.
"""
