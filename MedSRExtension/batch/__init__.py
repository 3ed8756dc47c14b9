"""``medsr batch``: a cohort of inputs super-resolved as tasks on Dask distributed.

inputs (what to run: folder, glob or CSV manifest -> tasks; outputs checked by real path; what a
folder scan skipped), manifest (OUTDIR/manifest.csv: what was made, with sha256s, written
atomically; --resume verifies it), cluster (a LocalCluster on loopback or an existing scheduler; one
torch thread or one GPU per worker), tasks (what a worker runs: the same single-input pipeline as
``medsr run``, into a private staging folder), staging (those folders, and the sweep of stale ones),
commit (the client renaming a result into place), interrupts (Ctrl-C held back while a result and
its row are committed), runner (submits, commits, keeps the manifest).
"""
