"""The model zoo: sha256-verified safetensors, clear refusals, never pickle."""
import hashlib
import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from MedSRExtension.zoo import weights as zoo
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models.registry import build

REPO_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Models")


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _write_zoo(folder, entries):
    with open(os.path.join(folder, "models.json"), "w", encoding="utf-8") as f:
        json.dump({"models": entries}, f)


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A models folder with one EDSR x2 weight file (trained-looking: not the default init)."""
    torch.manual_seed(7)
    net = build("edsr", "light", 2)
    path = tmp_path / "edsr-light-x2.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    entry = {"name": "edsr-light-x2", "file": path.name, "sha256": _sha(path), "architecture": "edsr",
             "preset": "light", "scales": [2], "degradation": "bicubic", "val_psnr": 30.0, "val_ssim": 0.9}
    _write_zoo(tmp_path, [entry])
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    return tmp_path, entry, net


def test_env_folder_is_searched_first(models_dir):
    folder, _, _ = models_dir
    assert zoo.search_dirs()[0] == str(folder) and zoo.models_dir() == str(folder)


def test_verified_weights_load_in_eval_mode(models_dir):
    _, entry, net = models_dir
    loaded = zoo.load_network("edsr", scale=2, weights="auto")
    assert not loaded.training
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert zoo.find_weights("edsr", 2)["sha256"] == entry["sha256"]


def test_corrupted_weight_file_is_refused_with_a_clear_message(models_dir):
    folder, entry, _ = models_dir
    path = folder / entry["file"]
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside a tensor
    path.write_bytes(bytes(data))
    with pytest.raises(MedSRError, match=r"edsr-light-x2\.safetensors.*corrupt.*re-download"):
        zoo.load_network("edsr", scale=2)


def test_missing_weight_file_is_a_clear_error(models_dir):
    folder, entry, _ = models_dir
    os.remove(folder / entry["file"])
    with pytest.raises(MedSRError, match=r"edsr-light-x2\.safetensors.*missing.*reinstall"):
        zoo.load_network("edsr", scale=2)


def test_network_without_weights_for_the_scale_is_refused(models_dir):
    with pytest.raises(MedSRError, match=r"no trained weights for 'edsr'.*4x4.*scales \[2\]"):
        zoo.load_network("edsr", scale=4)
    with pytest.raises(MedSRError, match=r"no trained weights for 'lgsr'.*no scale"):
        zoo.load_network("lgsr", scale=2)


def test_loading_never_unpickles(models_dir, tmp_path):
    """A pickle that would create a file when unpickled, listed with its correct sha256, is refused
    without running: loading only reads safetensors."""
    folder, entry, _ = models_dir
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = folder / "evil.safetensors"
    torch.save({"x": Bomb()}, str(evil))
    _write_zoo(folder, [{**entry, "file": evil.name, "sha256": _sha(evil)}])
    with pytest.raises(MedSRError, match="safetensors"):
        zoo.load_network("edsr", scale=2)
    with pytest.raises(MedSRError, match="pickled weights are never loaded"):
        zoo.load_network("edsr", scale=2, weights=str(folder / "weights.pt"))
    assert not marker.exists()


def test_best_model_for_scale_uses_validation_psnr(models_dir):
    folder, entry, _ = models_dir
    other = {**entry, "name": "lgsr-light-x2", "architecture": "lgsr", "val_psnr": 31.0}
    _write_zoo(folder, [entry, other])
    assert zoo.best_model_for(2) == "lgsr"
    assert zoo.best_model_for(3) == "bicubic"


def test_shipped_weights_match_their_checksums_and_size_limit():
    index = os.path.join(REPO_MODELS, "models.json")
    if not os.path.exists(index):
        pytest.skip("no shipped weights in this checkout")
    entries = json.load(open(index, encoding="utf-8"))["models"]
    for e in entries:
        path = os.path.join(REPO_MODELS, e["file"])
        assert os.path.getsize(path) <= 4 * 2**20, e["file"]
        assert _sha(path) == e["sha256"], e["file"]
        state = load_file(path)
        net = build(e["architecture"], e["preset"], e["scales"][0])
        net.load_state_dict(state)  # strict: the file fits the registered architecture
        assert os.path.exists(os.path.join(REPO_MODELS, e["card"])), e["card"]


@pytest.fixture
def thick_zoo(tmp_path, monkeypatch):
    from sample_zoo import write_thickslice_zoo
    entry = write_thickslice_zoo(str(tmp_path))  # serves (f, 1) for f in [1, 3]
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    return entry


def test_route_sends_one_axis_passes_of_per_axis_networks_to_thickslice_weights(thick_zoo):
    assert zoo.route("pfmdn", (2.0, 1.0)) == zoo.Route("thickslice", False)
    assert zoo.route("pfmdn", (1.0, 3.0)) == zoo.Route("thickslice", True)  # columns thick: transposed
    assert zoo.route("pfmdn", (2.0, 2.0)) == zoo.Route("bicubic", False)  # in-plane
    assert zoo.route("pfmdn", (4.0, 1.0)) == zoo.Route("bicubic", False)  # outside [1, 3]: bicubic serves 4
    assert zoo.route("pfmdn", (2.0, 1.0), preset="base") == zoo.Route("bicubic", False)
    assert zoo.route("edsr", (2.0, 1.0)) == zoo.Route("bicubic", False)  # not per-axis: the detour
    assert zoo.route("pfmdn", (2.0, 1.0), weights=thick_zoo["path"]) == zoo.Route(None, False)  # never re-routed
    assert zoo.find_weights("pfmdn", (1.0, 2.5))["name"] == thick_zoo["name"]
    assert zoo.find_weights("pfmdn", (3.0, 3.0), degradation="thickslice") is None  # through-plane only
    assert zoo.find_weights("pfmdn", (5.0, 1.0)) is None


def test_through_plane_weights_follow_the_slice_thickness(tmp_path, monkeypatch):
    """Thin slices with gaps read the entry trained on them, contiguous (or unknown) slices the one
    trained on contiguous slices, whatever their validation PSNRs; the run, its provenance and the
    adaptation's start all read the same file."""
    from sample_zoo import GAP_NAME, write_thickslice_zoo
    from MedSRExtension.adapt.finetune import warm_start
    from MedSRExtension.inference.engine import model_scales
    contiguous = write_thickslice_zoo(str(tmp_path), gap_range=(0.2, 0.7))
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    gap = zoo.find_weights("pfmdn", (3.0, 1.0), thickness=1 / 3)
    assert gap["name"] == GAP_NAME
    assert zoo.find_weights("pfmdn", (3.0, 1.0))["name"] == contiguous["name"]
    assert zoo.find_weights("pfmdn", (3.0, 1.0), thickness=0.9)["name"] == contiguous["name"]  # nearer 1 than 0.7
    assert zoo.find_weights("pfmdn", (1.0, 2.0), thickness=0.1)["name"] == GAP_NAME  # nearest range wins
    used = zoo.weights_used("pfmdn", model_scales("pfmdn", (1.0, 1.0, 3.0), "k"), thickness=0.3)
    assert [os.path.basename(p) for p, _, _ in used] == [gap["file"]]
    assert warm_start("pfmdn", (3.0, 1.0), thickness=0.3)[1] == GAP_NAME
    assert warm_start("pfmdn", (3.0, 1.0))[1] == contiguous["name"]


def test_weights_used_names_each_file_a_volumetric_run_reads(thick_zoo):
    from MedSRExtension.inference.engine import model_scales
    bicubic = zoo.find_weights("pfmdn", 2)
    used = zoo.weights_used("pfmdn", model_scales("pfmdn", (2.0, 2.0, 2.0), "j"))  # (2, 2), (2, 1) and (1, 2)
    assert used == [(bicubic["path"], bicubic["sha256"], "light"), (thick_zoo["path"], thick_zoo["sha256"], "light")]


def test_adaptation_starts_from_the_weights_the_route_reads(thick_zoo):
    from MedSRExtension.adapt.finetune import warm_start
    assert warm_start("pfmdn", (2.5, 1.0))[1] == thick_zoo["name"]
    assert warm_start("pfmdn", (4.0, 1.0))[1] == "pfmdn-light-x2-3-4"
    assert warm_start("pfmdn", (7.0, 1.0))[1] == "pfmdn-light-x2-3-4"  # no file serves 7: the bicubic one


def test_medsr_models_says_which_file_serves_which_through_plane_factor(thick_zoo, capsys):
    from MedSRExtension.cli import main
    assert main(["models"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")}
    assert (f"{thick_zoo['file']} (thickslice) serves f in [1, 3]; pfmdn-light-x2-3-4.safetensors (bicubic) "
            "serves f in [1, 4] where no thickslice file does") in lines["pfmdn"]
    assert "detour only" in lines["edsr"] and "at f in {2, 4}" in lines["edsr"]
