"""The worker: long runs of the pipeline away from Slicer's main thread (and the web server's), both halves.

- ``protocol``: what both halves share (the request folder, the event lines, the result files).
- ``serve``: the process side (``python -m MedSRExtension.worker.serve FOLDER``): reads a request,
  runs the pipeline, reports progress, log lines and the result.
- ``runner``: the client side: ``Runner`` (what a GUI drives: start, poll, progress, cancel, wait,
  result) and ``WorkerRunner``, which starts the process and follows it. The Slicer module only
  chooses its interpreter (PythonSlicer).
- ``in_process``: ``InProcessRunner``, the same ``Runner`` on a thread of this process (outside Slicer).
"""
