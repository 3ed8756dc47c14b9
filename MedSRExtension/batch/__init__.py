"""``medsr batch``: a cohort of inputs super-resolved as tasks on Dask distributed.

inputs (what to run: folder, glob or CSV manifest -> tasks), manifest (OUTDIR/manifest.csv: what was
made, with sha256s, written atomically; --resume verifies it), cluster (a LocalCluster on loopback
or an existing scheduler; one torch thread or one GPU per worker), tasks (what a worker runs: the
same single-input pipeline as ``medsr run``), runner (submits, collects, keeps the manifest).
"""
