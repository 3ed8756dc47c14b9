"""MedSR's sample volumes: what ships in Resources/SampleData and how it was made.

Both come from the MNI ICBM152 2009a T1 template (the training corpus of DESIGN.md; its notice is in
Resources/SampleData/README.md), made by ``scripts/make_sample_data.py``: a 1 mm brain MRI region,
and the same region as 4 mm thick slices (a Gaussian slice profile of 4 mm FWHM every 4 mm along
the inferior-superior axis), the everyday case for through-plane super-resolution.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    title: str
    file_name: str
    node_name: str


SAMPLES = (
    Sample("MedSR brain MRI (1 mm)", "MedSRBrainT1.nrrd", "MedSRBrainT1"),
    Sample("MedSR thick-slice brain MRI (4 mm slices)", "MedSRBrainT1Thick4mm.nrrd", "MedSRBrainT1Thick4mm"),
)


def sample_files(folder: str) -> list[str]:
    """The paths of the shipped sample files in ``folder`` (those present)."""
    return [os.path.join(folder, s.file_name) for s in SAMPLES if os.path.isfile(os.path.join(folder, s.file_name))]
