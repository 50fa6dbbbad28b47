"""Synthetic-set readers: every format written for real and round-tripped; bad input refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

import ddaudit.io as io
from ddaudit.errors import ConfigError, InputError
from ddaudit.io import _files, _registry
from ddaudit.io import _messages as msg
from ddaudit.io._types import SyntheticSet


# --------------------------------------------------------------------------- fixture writers


def random_images(n: int, c: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, size, size, generator=generator)


def class_major_labels(num_classes: int, ipc: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(ipc)


def write_dc(directory: Path, experiments: list, name: str | None = None) -> Path:
    """As DatasetCondensation main.py: one [images, labels] per experiment, numpy-float accs."""
    path = directory / (name or "res_DM_CIFAR10_ConvNet_2ipc.pt")
    accs = {"ConvNet": [np.float64(0.25 + 0.125 * k) for k in range(len(experiments))]}
    torch.save({"data": experiments, "accs_all_exps": accs}, path)
    return path


def write_trajectory(
    directory: Path, images: torch.Tensor, labels: torch.Tensor, tag: str = "best", lr=None
) -> Path:
    """As MTT/DATM distill.py: CPU tensors in images_<tag>.pt, labels_<tag>.pt, lr_<tag>.pt."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(images.cpu(), directory / f"images_{tag}.pt")
    torch.save(labels.cpu(), directory / f"labels_{tag}.pt")
    if lr is not None:
        torch.save(lr, directory / f"lr_{tag}.pt")
    return directory


def write_imagefolder(root: Path, folders: dict, suffix: str = ".png", **save) -> Path:
    """As SRe2L's recover step: one folder per class, class<cls>_id<k> image files."""
    for folder, arrays in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k, array in enumerate(arrays):
            Image.fromarray(array).save(root / folder / f"class_{folder}_id{k:03d}{suffix}", **save)
    return root


def uint8_pixels(n: int, shape: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(n)]


def raises_input_error(expected: str, call, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    text = str(info.value)
    assert text == expected
    assert "\n" not in text
    return info.value


# --------------------------------------------------------------------------- DatasetCondensation


def test_dc_round_trip_picks_last_experiment_and_reads_name(tmp_path):
    experiments = [[random_images(4, seed=k), class_major_labels(2, 2)] for k in range(3)]
    path = write_dc(tmp_path, experiments)

    synthetic = io.load_synthetic(path)

    assert synthetic.format == "dc"
    assert torch.equal(synthetic.images, experiments[-1][0])
    assert torch.equal(synthetic.labels, experiments[-1][1])
    assert synthetic.soft_labels is None and synthetic.lr is None
    assert synthetic.meta["method"] == "DM"
    assert synthetic.meta["dataset"] == "CIFAR10"
    assert synthetic.meta["model"] == "ConvNet"
    assert synthetic.meta["ipc"] == 2 == synthetic.ipc
    assert synthetic.meta["space_hint"] == "normalized"
    assert synthetic.meta["experiment"] == 2 and synthetic.meta["experiments"] == 3
    assert synthetic.meta["accs_all_exps"] == {"ConvNet": [0.25, 0.375, 0.5]}


@pytest.mark.parametrize("index, expected", [(0, 0), (1, 1), (-3, 0), (-2, 1)])
def test_dc_index_selects_experiment(tmp_path, index, expected):
    experiments = [[random_images(4, seed=k), class_major_labels(2, 2)] for k in range(3)]
    synthetic = io.load_synthetic(write_dc(tmp_path, experiments), index=index)
    assert torch.equal(synthetic.images, experiments[expected][0])
    assert synthetic.meta["experiment"] == expected


@pytest.mark.parametrize("index", [3, -4])
def test_dc_index_out_of_range_says_how_many(tmp_path, index):
    experiments = [[random_images(4, seed=k), class_major_labels(2, 2)] for k in range(3)]
    path = write_dc(tmp_path, experiments)
    expected = msg.INDEX_OUT_OF_RANGE.format(
        index=index, path=path, count=3, noun="experiments", low=-3, high=2
    )
    raises_input_error(expected, io.load_synthetic, path, index=index)
    assert "holds 3 experiments" in expected


def test_dc_detected_by_content_under_any_name(tmp_path):
    images = random_images(2)
    path = write_dc(tmp_path, [[images, torch.tensor([0, 1])]], name="my_result.pt")
    synthetic = io.load_synthetic(path)
    assert synthetic.format == "dc"
    assert "method" not in synthetic.meta
    assert torch.equal(synthetic.images, images)


def test_each_file_is_read_from_disk_once(tmp_path, monkeypatch):
    path = write_dc(tmp_path, [[random_images(4), class_major_labels(2, 2)]])
    calls: list[str] = []
    real_load = torch.load

    def counting_load(file, *args, **kwargs):
        calls.append(os.fspath(file))
        assert kwargs.get("weights_only") is True
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    io.load_synthetic(path)
    assert calls == [os.fspath(path)]


# --------------------------------------------------------------------------- MTT / FTD / DATM


def test_mtt_directory_and_either_file(tmp_path):
    images, labels = random_images(6), class_major_labels(3, 2)
    directory = write_trajectory(tmp_path / "run", images, labels)

    for path in (directory, directory / "images_best.pt", directory / "labels_best.pt"):
        synthetic = io.load_synthetic(path)
        assert synthetic.format == "mtt"
        assert torch.equal(synthetic.images, images)
        assert torch.equal(synthetic.labels, labels)
        assert synthetic.lr is None
        assert synthetic.meta["space_hint"] == "zca_or_normalized"
        assert synthetic.meta["iteration"] == "best"


def test_mtt_iteration_pair_and_zca_evidence(tmp_path):
    directory = tmp_path / "run"
    write_trajectory(directory, random_images(4, seed=1), class_major_labels(2, 2))
    late_images = random_images(4, seed=2)
    write_trajectory(directory, late_images, class_major_labels(2, 2), tag="5000")
    torch.save(random_images(4, seed=3), directory / "images_zca_5000.pt")

    synthetic = io.load_synthetic(directory / "images_5000.pt")

    assert synthetic.format == "mtt"
    assert synthetic.meta["iteration"] == 5000
    assert torch.equal(synthetic.images, late_images)
    assert synthetic.meta["zca_inverse_files"] == ["images_zca_5000.pt"]


def test_mtt_soft_labels_become_argmax(tmp_path):
    generator = torch.Generator().manual_seed(3)
    soft = torch.randn(6, 4, generator=generator)
    directory = write_trajectory(tmp_path / "run", random_images(6), soft)

    synthetic = io.load_synthetic(directory)

    expected = torch.tensor([int(np.argmax(row)) for row in soft.numpy()])
    assert torch.equal(synthetic.labels, expected)
    assert synthetic.labels.dtype == torch.int64
    assert torch.equal(synthetic.soft_labels, soft)
    assert synthetic.meta["soft_label_kind"] == "logits"


def test_soft_label_probabilities_are_recognised(tmp_path):
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    probabilities = torch.softmax(logits, dim=1)
    directory = write_trajectory(tmp_path / "run", random_images(4), probabilities)
    assert io.load_synthetic(directory).meta["soft_label_kind"] == "probabilities"


@pytest.mark.parametrize("lr", [torch.tensor(0.0123), torch.tensor([0.0123])])
def test_datm_detected_with_learned_lr_and_soft_labels(tmp_path, lr):
    images = random_images(4)
    logits = torch.randn(4, 2, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    directory = write_trajectory(tmp_path / "Normal", images, logits, lr=lr.requires_grad_(True))

    for path in (directory, directory / "images_best.pt", directory / "lr_best.pt"):
        synthetic = io.load_synthetic(path)
        assert synthetic.format == "datm"
        assert synthetic.lr == pytest.approx(0.0123)
        assert torch.equal(synthetic.images, images)
        assert torch.equal(synthetic.soft_labels, logits.detach())
        assert torch.equal(synthetic.labels, logits.detach().argmax(dim=1))


def test_forcing_mtt_on_a_datm_directory_ignores_lr(tmp_path):
    directory = write_trajectory(
        tmp_path / "run", random_images(2), torch.tensor([0, 1]), lr=torch.tensor(0.01)
    )
    synthetic = io.load_synthetic(directory, format="mtt")
    assert synthetic.format == "mtt" and synthetic.lr is None


@pytest.mark.parametrize(
    "lr, found",
    [
        (torch.tensor([0.01, 0.02]), "a torch.float32 tensor of shape (2,)"),
        (torch.tensor(-0.01), repr(float(torch.tensor(-0.01)))),
        (torch.tensor(float("nan")), "nan"),
    ],
)
def test_datm_bad_lr_is_refused(tmp_path, lr, found):
    directory = write_trajectory(tmp_path / "run", random_images(2), torch.tensor([0, 1]), lr=lr)
    expected = msg.BAD_LR.format(path=directory / "lr_best.pt", found=found)
    raises_input_error(expected, io.load_synthetic, directory)


def test_mtt_missing_labels_file(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    torch.save(random_images(2), directory / "images_best.pt")
    expected = msg.MISSING_PARTNER.format(path=directory, partner="labels_best.pt")
    raises_input_error(expected, io.load_synthetic, directory)


# --------------------------------------------------------------------------- IDC / DREAM


@pytest.mark.parametrize("container", [list, tuple])
def test_idc_data_pt_round_trip(tmp_path, container):
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = class_major_labels(2, 2)
    path = tmp_path / "data.pt"
    torch.save(container([images, labels]), path)

    synthetic = io.load_synthetic(path)

    assert synthetic.format == "idc"
    assert torch.equal(synthetic.images, images)
    assert torch.equal(synthetic.labels, labels)
    assert synthetic.meta["space_hint"] == "raw"


def test_decode_multiformation_matches_tile_by_tile_upsampling():
    images = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([3, 7])
    synthetic = SyntheticSet(images, labels, "idc", "data.pt", meta={"multiformation": "x"})

    decoded = io.decode_multiformation(synthetic, 2)

    assert decoded.images.shape == (8, 3, 6, 6)
    expected_images, expected_labels = [], []
    for i in range(2):
        for j in range(2):
            tile = images[:, :, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3]
            expected_images.append(F.interpolate(tile, size=(6, 6), mode="bilinear"))
            expected_labels.append(torch.tensor([3, 7]))
    assert torch.allclose(decoded.images, torch.cat(expected_images), atol=1e-6)
    assert torch.equal(decoded.labels, torch.cat(expected_labels))
    assert decoded.meta == {"multiformation_factor": 2}


def test_decode_multiformation_pads_with_grey_and_keeps_constant_tiles():
    images = torch.zeros(1, 1, 5, 5)
    images[:, :, :3, :3] = 0.2
    decoded = io.decode_multiformation(SyntheticSet(images, torch.tensor([1]), "idc", "p"), 2)
    assert decoded.images.shape == (4, 1, 5, 5)
    assert torch.allclose(decoded.images[0], torch.full((1, 5, 5), 0.2))
    assert decoded.labels.tolist() == [1, 1, 1, 1]
    last_tile = decoded.images[3, 0]  # rows/cols 3-4 of the image plus one padded row/col
    assert float(last_tile[0, 0]) == 0.0
    assert float(last_tile[4, 4]) == pytest.approx(0.5)
    assert io.decode_multiformation(decoded, 1) is decoded


@pytest.mark.parametrize("factor", [0, -1, 1.5, "2"])
def test_decode_multiformation_rejects_bad_factor(factor):
    synthetic = SyntheticSet(torch.zeros(1, 1, 4, 4), torch.tensor([0]), "idc", "p")
    with pytest.raises(ConfigError) as info:
        io.decode_multiformation(synthetic, factor)
    assert str(info.value) == msg.BAD_FACTOR.format(factor=factor)


# --------------------------------------------------------------------------- generic containers


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y"), ("data", "targets")])
def test_tensors_dict_keys(tmp_path, keys):
    images, labels = random_images(3), torch.tensor([2, 0, 1])
    path = tmp_path / "set.pt"
    torch.save({keys[0]: images, keys[1]: labels, "note": "extra keys are fine"}, path)
    synthetic = io.load_synthetic(path)
    assert synthetic.format == "tensors"
    assert torch.equal(synthetic.images, images) and torch.equal(synthetic.labels, labels)
    assert synthetic.meta["keys"] == list(keys)


def test_tensors_pair_and_canonical_dtypes(tmp_path):
    images = random_images(3).double().permute(0, 1, 3, 2)  # float64, non-contiguous
    labels = torch.tensor([1, 0, 1], dtype=torch.int32)
    path = tmp_path / "pair.pth"
    torch.save((images, labels), path)

    synthetic = io.load_synthetic(path)

    assert synthetic.format == "tensors"
    assert synthetic.images.dtype == torch.float32 and synthetic.images.is_contiguous()
    assert synthetic.labels.dtype == torch.int64
    assert torch.equal(synthetic.images, images.float())
    assert synthetic.labels.tolist() == [1, 0, 1]


def test_three_dimensional_images_gain_a_channel_and_uint8_is_scaled(tmp_path):
    pixels = torch.tensor(np.stack(uint8_pixels(2, (5, 5), seed=4)))
    path = tmp_path / "gray.pt"
    torch.save({"images": pixels, "labels": torch.tensor([0.0, 1.0])}, path)
    synthetic = io.load_synthetic(path)
    assert synthetic.images.shape == (2, 1, 5, 5)
    assert torch.allclose(synthetic.images[:, 0], pixels.float() / 255)
    assert synthetic.meta["space_hint"] == "raw"
    assert synthetic.labels.tolist() == [0, 1]


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y")])
def test_npz_round_trip(tmp_path, keys):
    images = random_images(4).numpy()
    labels = np.array([0, 1, 1, 0])
    path = tmp_path / "set.npz"
    np.savez(path, **{keys[0]: images, keys[1]: labels})
    synthetic = io.load_synthetic(path)
    assert synthetic.format == "npz"
    assert np.array_equal(synthetic.images.numpy(), images)
    assert synthetic.labels.tolist() == labels.tolist()


def test_npz_with_object_arrays_is_refused(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, images=np.array([object()], dtype=object), labels=np.array([0]))
    raises_input_error(msg.NPZ_NEEDS_PICKLE.format(path=path), io.load_synthetic, path)


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y")])
def test_safetensors_round_trip(tmp_path, keys):
    images, labels = random_images(4), torch.tensor([3, 1, 2, 0])
    path = tmp_path / "set.safetensors"
    save_file({keys[0]: images, keys[1]: labels}, str(path))
    synthetic = io.load_synthetic(path)
    assert synthetic.format == "safetensors"
    assert torch.equal(synthetic.images, images) and torch.equal(synthetic.labels, labels)


def test_container_without_known_keys_lists_what_it_found(tmp_path):
    path = tmp_path / "set.safetensors"
    save_file({"pixels": torch.zeros(1, 1, 2, 2), "classes": torch.zeros(1)}, str(path))
    expected = msg.MISSING_KEYS.format(
        path=path, expected="images/labels or x/y", found=["classes", "pixels"]
    )
    raises_input_error(expected, io.load_synthetic, path)


# --------------------------------------------------------------------------- ImageFolder


def test_imagefolder_png_exact_with_numbered_folders(tmp_path):
    folders = {"new002": uint8_pixels(2, (6, 6, 3), 0), "new007": uint8_pixels(3, (6, 6, 3), 1)}
    root = write_imagefolder(tmp_path / "syn", folders)

    synthetic = io.load_synthetic(root)

    assert synthetic.format == "imagefolder"
    assert synthetic.meta["class_to_idx"] == {"new002": 2, "new007": 7}
    assert synthetic.meta["space_hint"] == "raw"
    assert synthetic.labels.tolist() == [2, 2, 7, 7, 7]
    expected = np.stack(folders["new002"] + folders["new007"]).transpose(0, 3, 1, 2) / 255.0
    assert np.allclose(synthetic.images.numpy(), expected, atol=1e-7)


def test_imagefolder_named_folders_and_greyscale(tmp_path):
    folders = {"dog": uint8_pixels(1, (4, 4), 2), "cat": uint8_pixels(2, (4, 4), 3)}
    root = write_imagefolder(tmp_path / "syn", folders)
    synthetic = io.load_synthetic(root)
    assert synthetic.meta["class_to_idx"] == {"cat": 0, "dog": 1}
    assert synthetic.images.shape == (3, 1, 4, 4)
    assert synthetic.labels.tolist() == [0, 0, 1]
    expected = np.stack(folders["cat"] + folders["dog"])[:, None] / 255.0
    assert np.allclose(synthetic.images.numpy(), expected, atol=1e-7)


def test_imagefolder_jpeg_sre2l_layout_is_approximate(tmp_path):
    yy, xx = np.mgrid[0:16, 0:16]
    smooth = np.stack([xx * 15, yy * 15, (xx + yy) * 7], axis=-1).astype(np.uint8)
    folders = {f"new{c:03d}": [smooth, smooth[::-1].copy()] for c in range(3)}
    root = write_imagefolder(tmp_path / "syn", folders, suffix=".jpg", quality=95)

    synthetic = io.load_synthetic(root)

    assert synthetic.images.shape == (6, 3, 16, 16)
    assert synthetic.labels.tolist() == [0, 0, 1, 1, 2, 2]
    expected = torch.tensor(smooth.transpose(2, 0, 1) / 255.0, dtype=torch.float32)
    assert float((synthetic.images[0] - expected).abs().mean()) < 0.02


def test_imagefolder_mixed_sizes_are_refused(tmp_path):
    root = write_imagefolder(
        tmp_path / "syn", {"a0": uint8_pixels(1, (4, 4, 3), 0), "a1": uint8_pixels(1, (5, 4, 3), 1)}
    )
    expected = msg.MIXED_IMAGES.format(
        path=root / "a1" / "class_a1_id000.png",
        found="4x5 RGB",
        first=root / "a0" / "class_a0_id000.png",
        expected="4x4 RGB",
    )
    raises_input_error(expected, io.load_synthetic, root)


def test_imagefolder_mixed_modes_are_refused(tmp_path):
    root = write_imagefolder(
        tmp_path / "syn", {"a0": uint8_pixels(1, (4, 4, 3), 0), "a1": uint8_pixels(1, (4, 4), 1)}
    )
    with pytest.raises(InputError, match="share one size and mode"):
        io.load_synthetic(root)


def test_imagefolder_duplicate_class_numbers_are_refused(tmp_path):
    root = write_imagefolder(
        tmp_path / "syn", {"a1": uint8_pixels(1, (4, 4), 0), "b1": uint8_pixels(1, (4, 4), 1)}
    )
    expected = msg.DUPLICATE_CLASS_NUMBER.format(first="a1", second="b1", number=1)
    raises_input_error(expected, io.load_synthetic, root)


def test_imagefolder_empty_class_folder_and_unreadable_image(tmp_path):
    root = write_imagefolder(tmp_path / "syn", {"c0": uint8_pixels(1, (4, 4), 0)})
    (root / "c1").mkdir()
    raises_input_error(msg.EMPTY_CLASS_FOLDER.format(path=root / "c1"), io.load_synthetic, root)
    (root / "c1" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"broken\.png cannot be read as an image"):
        io.load_synthetic(root)


def test_imagefolder_unsupported_mode(tmp_path):
    root = tmp_path / "syn" / "c0"
    root.mkdir(parents=True)
    Image.new("RGBA", (4, 4)).save(root / "x.png")
    raises_input_error(
        msg.UNSUPPORTED_MODE.format(path=root / "x.png", mode="RGBA"),
        io.load_synthetic,
        root.parent,
    )


# --------------------------------------------------------------------------- detection and forcing


def test_detection_picks_each_format(tmp_path):
    write_dc(tmp_path, [[random_images(2), torch.tensor([0, 1])]])
    write_trajectory(tmp_path / "mtt", random_images(2), torch.tensor([0, 1]))
    lr = torch.tensor(0.01)
    write_trajectory(tmp_path / "datm", random_images(2), torch.tensor([0, 1]), lr=lr)
    torch.save([random_images(2), torch.tensor([0, 1])], tmp_path / "data.pt")
    torch.save([random_images(2), torch.tensor([0, 1])], tmp_path / "pair.pt")
    np.savez(tmp_path / "set.npz", x=random_images(2).numpy(), y=np.array([0, 1]))
    save_file({"x": random_images(2), "y": torch.tensor([0, 1])}, str(tmp_path / "set.safetensors"))
    write_imagefolder(tmp_path / "folder", {"c0": uint8_pixels(1, (4, 4), 0)})

    found = {
        name: io.detect_format(tmp_path / name)
        for name in [
            "res_DM_CIFAR10_ConvNet_2ipc.pt", "mtt", "datm", "data.pt",
            "pair.pt", "set.npz", "set.safetensors", "folder",
        ]
    }
    assert found == {
        "res_DM_CIFAR10_ConvNet_2ipc.pt": "dc", "mtt": "mtt", "datm": "datm", "data.pt": "idc",
        "pair.pt": "tensors", "set.npz": "npz", "set.safetensors": "safetensors",
        "folder": "imagefolder",
    }
    assert set(found.values()) == set(io.available_formats())


def test_format_forcing_overrides_detection(tmp_path):
    images, labels = random_images(2), torch.tensor([0, 1])
    path = tmp_path / "data.pt"
    torch.save([images, labels], path)
    assert io.load_synthetic(path).format == "idc"
    forced = io.load_synthetic(path, format="tensors")
    assert forced.format == "tensors" and torch.equal(forced.images, images)
    assert io.load_synthetic(path, format=" IDC ").format == "idc"


def test_forced_format_with_the_wrong_structure(tmp_path):
    path = tmp_path / "pair.pt"
    torch.save([random_images(2), torch.tensor([0, 1])], path)
    with pytest.raises(InputError, match="does not look like a DatasetCondensation result file"):
        io.load_synthetic(path, format="dc")


def test_unknown_format_lists_available(tmp_path):
    path = tmp_path / "pair.pt"
    torch.save([random_images(2), torch.tensor([0, 1])], path)
    expected = msg.UNKNOWN_FORMAT.format(format="h5", available=", ".join(io.available_formats()))
    error = raises_input_error(expected, io.load_synthetic, path, format="h5")
    assert all(name in str(error) for name in ["dc", "mtt", "datm", "idc", "imagefolder"])


def test_unrecognised_path_lists_available(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    expected = msg.UNRECOGNISED.format(path=path, available=", ".join(io.available_formats()))
    raises_input_error(expected, io.load_synthetic, path)


def test_single_set_formats_accept_only_index_zero(tmp_path):
    path = tmp_path / "pair.pt"
    torch.save([random_images(2), torch.tensor([0, 1])], path)
    assert io.load_synthetic(path, index=0).num_images == 2
    expected = msg.INDEX_OUT_OF_RANGE.format(
        index=1, path=path, count=1, noun="synthetic set", low=-1, high=0
    )
    raises_input_error(expected, io.load_synthetic, path, index=1)


def test_registering_a_reader_extends_detection(tmp_path, monkeypatch):
    monkeypatch.setattr(_registry, "_READERS", dict(_registry._READERS))
    path = tmp_path / "set.custom"
    path.write_text("3")

    @io.register_reader("custom", detect=lambda p: p.suffix == ".custom", priority=5)
    def read_custom(p: Path, index: int) -> SyntheticSet:
        """One custom set."""
        n = int(p.read_text())
        labels = torch.zeros(n, dtype=torch.long)
        return SyntheticSet(torch.zeros(n, 1, 2, 2), labels, "custom", str(p))

    assert io.available_formats()[0] == "custom"
    assert io.load_synthetic(path).num_images == 3
    with pytest.raises(ValueError, match="already registered"):
        io.register_reader("dc")(read_custom)


# --------------------------------------------------------------------------- safety


class WritesMarker:
    """A pickle payload: unpickling it calls ``factory(*args)``."""

    def __init__(self, factory, args):
        self.factory, self.args = factory, args

    def __reduce__(self):
        return self.factory, self.args


def payloads(marker: Path) -> dict[str, WritesMarker]:
    return {
        "os.system": WritesMarker(os.system, (f"touch '{marker}'",)),
        "open": WritesMarker(open, (str(marker), "w")),
    }


@pytest.mark.parametrize("payload_name", ["os.system", "open"])
@pytest.mark.parametrize("zipfile", [True, False])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload_name, zipfile):
    marker = tmp_path / "marker"
    path = tmp_path / "images_best.pt"
    torch.save(
        {"images": payloads(marker)[payload_name], "labels": torch.zeros(1)},
        path,
        _use_new_zipfile_serialization=zipfile,
    )
    torch.save(torch.zeros(1), tmp_path / "labels_best.pt")

    raises_input_error(msg.NEEDS_CODE.format(path=path), io.load_synthetic, path, format="tensors")
    raises_input_error(msg.NEEDS_CODE.format(path=path), io.load_synthetic, tmp_path)
    assert not marker.exists()

    torch.load(path, weights_only=False)  # the payload is live: an unsafe load would run it
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_raw_pickle_is_refused(tmp_path, protocol):
    marker = tmp_path / "marker"
    path = tmp_path / "set.pt"
    path.write_bytes(pickle.dumps(payloads(marker)["open"], protocol=protocol))
    with pytest.raises(InputError) as info:
        io.load_synthetic(path, format="tensors")
    if protocol == 2:
        assert str(info.value) == msg.NEEDS_CODE.format(path=path)
    else:  # the weights-only unpickler stops at the first protocol-4 opcode
        assert str(info.value).startswith(f"{path} is damaged or is not a torch.save file (")
    assert not marker.exists()


def test_numpy_scalars_from_older_numpy_load(tmp_path):
    """DatasetCondensation files written under numpy 1 name numpy.core.multiarray.scalar."""
    buffer = tmp_path / "tmp.pt"
    images = random_images(2)
    torch.save(
        {"data": [[images, torch.tensor([0, 1])]], "accs_all_exps": {"ConvNet": [np.float64(0.5)]}},
        buffer,
        _use_new_zipfile_serialization=False,
    )
    raw = buffer.read_bytes()
    assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
    path = tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt"
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    synthetic = io.load_synthetic(path)
    assert synthetic.meta["accs_all_exps"] == {"ConvNet": [0.5]}
    assert torch.equal(synthetic.images, images)


# ------------------------------------------------------------------ damaged files, bad tensors


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere.pt"
    raises_input_error(msg.MISSING_PATH.format(path=path), io.load_synthetic, path)
    raises_input_error(msg.MISSING_PATH.format(path=path), io.load_synthetic, path, format="dc")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_torch_file(tmp_path, damage):
    path = write_dc(tmp_path, [[random_images(4), class_major_labels(2, 2)]])
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 7, "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(InputError) as info:
        io.load_synthetic(path)
    text = str(info.value)
    assert text.startswith(f"{path} is damaged or is not a torch.save file (")
    assert text.endswith("); re-save or re-download it") and "\n" not in text


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_damaged_array_files(tmp_path, suffix):
    path = tmp_path / f"set{suffix}"
    path.write_bytes(b"PK\x03\x04 not really an archive")
    with pytest.raises(InputError, match=r"is damaged or is not a .* file \(.+\); re-save"):
        io.load_synthetic(path)


def save_pair(tmp_path: Path, images, labels) -> Path:
    path = tmp_path / "set.pt"
    torch.save({"images": images, "labels": labels}, path)
    return path


@pytest.mark.parametrize("shape", [(2, 4), (1, 2, 3, 4, 5)])
def test_images_of_wrong_rank(tmp_path, shape):
    path = save_pair(tmp_path, torch.zeros(shape), torch.zeros(shape[0], dtype=torch.long))
    raises_input_error(msg.IMAGES_NDIM.format(where=path, shape=shape), io.load_synthetic, path)


def test_images_of_integer_dtype(tmp_path):
    path = save_pair(tmp_path, torch.zeros(2, 1, 2, 2, dtype=torch.int32), torch.tensor([0, 1]))
    raises_input_error(msg.IMAGES_DTYPE.format(where=path, dtype="int32"), io.load_synthetic, path)


def test_labels_length_mismatch(tmp_path):
    path = save_pair(tmp_path, random_images(3), torch.tensor([0, 1]))
    expected = msg.LABELS_LENGTH.format(where=path, labels=2, images=3)
    raises_input_error(expected, io.load_synthetic, path)


def test_non_integer_hard_labels(tmp_path):
    path = save_pair(tmp_path, random_images(2), torch.tensor([0.0, 1.5]))
    expected = msg.NON_INTEGER_LABELS.format(where=path, dtype="float32", example=" such as 1.5")
    raises_input_error(expected, io.load_synthetic, path)
    path = save_pair(tmp_path, random_images(2), torch.tensor([True, False]))
    raises_input_error(
        msg.NON_INTEGER_LABELS.format(where=path, dtype="bool", example=""), io.load_synthetic, path
    )


def test_negative_labels(tmp_path):
    path = save_pair(tmp_path, random_images(3), torch.tensor([0, -1, -3]))
    expected = msg.NEGATIVE_LABELS.format(where=path, count=2, smallest=-3)
    raises_input_error(expected, io.load_synthetic, path)


def test_labels_of_wrong_rank(tmp_path):
    path = save_pair(tmp_path, random_images(2), torch.zeros(2, 2, 2))
    raises_input_error(msg.LABELS_NDIM.format(where=path, shape=(2, 2, 2)), io.load_synthetic, path)


def test_non_finite_pixels_are_counted(tmp_path):
    images = random_images(2)
    images[0, 0, 0, 0] = float("nan")
    images[1, 2, 3, 4] = float("inf")
    images[1, 0, 1, 1] = float("-inf")
    path = save_pair(tmp_path, images, torch.tensor([0, 1]))
    expected = msg.NON_FINITE_IMAGES.format(where=path, count=3, total=images.numel())
    raises_input_error(expected, io.load_synthetic, path)
    assert "3 of 384" in expected


def test_non_finite_soft_labels(tmp_path):
    soft = torch.zeros(2, 3)
    soft[1, 2] = float("nan")
    path = save_pair(tmp_path, random_images(2), soft)
    expected = msg.NON_FINITE_SOFT_LABELS.format(where=path, count=1)
    raises_input_error(expected, io.load_synthetic, path)


def test_empty_set(tmp_path):
    path = save_pair(tmp_path, torch.zeros(0, 3, 4, 4), torch.zeros(0, dtype=torch.long))
    raises_input_error(msg.EMPTY_SET.format(where=path), io.load_synthetic, path)
    dc_path = write_dc(tmp_path, [])
    with pytest.raises(InputError, match="its 'data' list is empty"):
        io.load_synthetic(dc_path)


def test_dc_experiment_errors_name_the_experiment(tmp_path):
    good = [random_images(2), torch.tensor([0, 1])]
    path = write_dc(tmp_path, [good, [random_images(2), torch.tensor([0, 1, 1])]])
    expected = msg.LABELS_LENGTH.format(where=f"{path} experiment 1", labels=3, images=2)
    raises_input_error(expected, io.load_synthetic, path)
    assert io.load_synthetic(path, index=0).num_images == 2


def test_non_tensor_entries(tmp_path):
    path = save_pair(tmp_path, [[0.0]], torch.tensor([0]))
    raises_input_error(
        msg.NOT_A_TENSOR.format(where=path, what="images", found="list"), io.load_synthetic, path
    )


def test_loading_session_cache_does_not_outlive_a_call(tmp_path):
    path = save_pair(tmp_path, random_images(2), torch.tensor([0, 1]))
    first = io.load_synthetic(path)
    replacement = random_images(2, seed=9)
    save_pair(tmp_path, replacement, torch.tensor([1, 0]))
    second = io.load_synthetic(path)
    assert not torch.equal(first.images, second.images)
    assert torch.equal(second.images, replacement)
    assert _files._cache.get() is None
