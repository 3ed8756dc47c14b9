"""Which packages the ``medsr`` distribution holds (all other metadata is in pyproject.toml).

Three folders keep the places the Slicer extension needs, so they are mapped here:
``MedSRExtension`` and ``MedSRWeb`` at the top; ``MedSRLib`` (the Qt-free panel model, used by the
Slicer module, the web UI and its server alike) from ``MedSRModule/MedSRLib``; and the shipped weights
(``Resources/Models``: weights, models.json, model cards, cpu_fastpaths.json) as the data package
``MedSRExtension.zoo.shipped``, which ``zoo.weights`` finds through importlib.resources.
"""
from setuptools import find_packages, setup

SHIPPED = "MedSRExtension.zoo.shipped"

setup(
    packages=find_packages(include=["MedSRExtension", "MedSRExtension.*", "MedSRWeb", "MedSRWeb.*"])
    + find_packages("MedSRModule", include=["MedSRLib", "MedSRLib.*"]) + [SHIPPED, f"{SHIPPED}.cards"],
    package_dir={"MedSRLib": "MedSRModule/MedSRLib", SHIPPED: "Resources/Models"},
    package_data={SHIPPED: ["*.json", "*.safetensors"], f"{SHIPPED}.cards": ["*.md", "*.png"]},
)
