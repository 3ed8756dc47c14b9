"""The worker process: long runs of the pipeline away from Slicer's main thread (and the web server's).
``serve`` is the process side (``python -m MedSRExtension.worker.serve FOLDER``): it reads a request
folder, runs the pipeline and reports progress, log lines and the result as JSON lines. The client side
(starting it, reading its lines, cancelling) is ``MedSRLib.worker_runner`` in the Slicer module."""
