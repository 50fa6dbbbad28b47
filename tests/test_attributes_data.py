"""Several protected attributes in the readers: intersection indices, names, and the on-disk layouts.

CelebA and UTKFace are read from tiny fixtures written in their real layouts
(CelebA's 40-attribute text list with -1/1 values and its partition list;
UTKFace's ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` names); each image's
colour encodes its own labels, so a test sees that labels travelled with the
right image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddaudit.data import intersection_index, intersection_names, intersection_values, load_real, select_attributes
from ddaudit.data._attributes import MAX_INTERSECTIONS, check_intersection_size
from ddaudit.errors import ConfigError, InputError



# ---------------------------------------------------------------- the intersection index


def test_intersection_index_is_mixed_radix_with_the_first_attribute_most_significant():
    values = np.array([[0, 0], [0, 2], [1, 0], [1, 2], [1, 1]])
    assert intersection_index(values, (2, 3)).tolist() == [0, 2, 3, 5, 4]
    assert intersection_index(torch.as_tensor(values), (2, 3)).tolist() == [0, 2, 3, 5, 4]
    # Sizes default to the largest value + 1; a batch lacking the top value of the last column numbers differently.
    assert intersection_index(values[:3]).tolist() == [0, 2, 3]
    assert intersection_index(values[[0, 2]]).tolist() == [0, 1]
    table = intersection_values((2, 3, 2))
    assert table.shape == (12, 3)
    assert intersection_index(table, (2, 3, 2)).tolist() == list(range(12))
    names = intersection_names(["Male", "Young"], [["0", "1"], ["0", "1"]])
    assert names == ["Male=0, Young=0", "Male=0, Young=1", "Male=1, Young=0", "Male=1, Young=1"]


def test_select_attributes_by_name_in_the_order_named():
    names = ["Attractive", "Male", "Young"]
    assert select_attributes(names, "young, Male", source="x") == [2, 1]
    assert select_attributes(names, None, source="x") == [0, 1, 2]
    with pytest.raises(InputError, match="unknown attribute 'Old'.*Attractive, Male, Young"):
        select_attributes(names, "Male,Old", source="x")
    with pytest.raises(ConfigError, match="named twice"):
        select_attributes(names, "Male,male", source="x")
    with pytest.raises(ConfigError, match="more than"):
        check_intersection_size(["a"] * 13, [2] * 13)
    assert check_intersection_size(["a"] * 12, [2] * 12) == 4096 == MAX_INTERSECTIONS


# ---------------------------------------------------------------- tensors


def two_attribute_files(tmp_path: Path, **extra) -> tuple[Path, Path, dict, dict]:
    generator = torch.Generator().manual_seed(0)
    train = {"x": torch.randn(24, 1, 4, 4, generator=generator), "y": torch.arange(24) % 2,
             "a": torch.stack([torch.arange(24) % 3, (torch.arange(24) // 3) % 2], dim=1)}
    test = {"x": torch.randn(12, 1, 4, 4, generator=generator), "y": torch.arange(12) % 2,
            "a": torch.stack([torch.arange(12) % 3, (torch.arange(12) // 6) % 2], dim=1), **extra}
    torch.save(train, tmp_path / "train.pt")
    torch.save(test, tmp_path / "test.pt")
    return tmp_path / "train.pt", tmp_path / "test.pt", train, test


def test_tensors_with_two_attribute_columns_group_by_their_intersection(tmp_path):
    train_path, test_path, train, test = two_attribute_files(
        tmp_path, attributes=["colour", "gender"], attribute_values=[["red", "green", "blue"], ["f", "m"]])
    data = load_real(f"tensors:{train_path},{test_path}")
    assert data.attributes == ["colour", "gender"]
    assert data.attribute_values == [["red", "green", "blue"], ["f", "m"]]
    assert data.num_groups == 6 and data.group_names[0] == "colour=red, gender=f"
    assert data.group_names[5] == "colour=blue, gender=m"
    for split, raw in ((data.train, train), (data.test, test)):
        assert torch.equal(split.attrs, raw["a"])
        assert split.a.tolist() == [2 * c + g for c, g in raw["a"].tolist()]
    # A subset keeps every row's attributes.
    part = data.test.subset(torch.tensor([1, 7]))
    assert torch.equal(part.attrs, test["a"][[1, 7]])

    one = load_real(f"tensors:{train_path},{test_path}", sensitive="gender")
    assert one.attributes is None and one.test.attrs is None
    assert torch.equal(one.test.a, test["a"][:, 1]) and one.group_names == ["f", "m"] and one.num_groups == 2
    flipped = load_real(f"tensors:{train_path},{test_path}", sensitive="gender,colour")
    assert flipped.group_names[1] == "gender=f, colour=green"
    assert flipped.test.a.tolist() == [3 * g + c for c, g in test["a"].tolist()]


def test_tensors_without_names_call_attributes_by_column(tmp_path):
    _, test_path, _, test = two_attribute_files(tmp_path)
    data = load_real(f"tensors:{test_path}")
    assert data.attributes == ["a0", "a1"] and data.group_names[4] == "a0=2, a1=0"
    assert data.num_groups == 6 and data.train is None


def test_tensors_refuse_attribute_tables_that_do_not_fit(tmp_path):
    train_path, test_path, train, test = two_attribute_files(tmp_path)
    torch.save({**test, "a": test["a"][:, :1].repeat(1, 3)}, tmp_path / "three.pt")
    with pytest.raises(InputError, match="3 attribute column"):
        load_real(f"tensors:{train_path},{tmp_path / 'three.pt'}")
    torch.save({**test, "a": test["a"][:, 0]}, tmp_path / "flat.pt")
    with pytest.raises(InputError, match="attribute column"):
        load_real(f"tensors:{train_path},{tmp_path / 'flat.pt'}")
    torch.save({**test, "attributes": ["colour"]}, tmp_path / "names.pt")
    with pytest.raises(InputError, match="lists 1"):
        load_real(f"tensors:{tmp_path / 'names.pt'}")
    torch.save({**test, "attribute_values": [["r", "g"], ["f", "m"]]}, tmp_path / "values.pt")
    with pytest.raises(InputError, match="names 2 values"):
        load_real(f"tensors:{tmp_path / 'values.pt'}")
    torch.save({**test, "a": torch.stack([test["a"][:, 0], torch.ones(12, dtype=torch.int64)], dim=1)},
               tmp_path / "constant.pt")
    with pytest.raises(InputError, match="'a1' takes a single value"):
        load_real(f"tensors:{tmp_path / 'constant.pt'}")
    with pytest.raises(InputError, match="unknown attribute 'age'"):
        load_real(f"tensors:{test_path}", sensitive="a0,age")
    torch.save({**test, "a": test["a"][:, 0]}, tmp_path / "single.pt")
    with pytest.raises(ConfigError, match="one group column"):
        load_real(f"tensors:{tmp_path / 'single.pt'}", sensitive="a0")


# ---------------------------------------------------------------- CelebA, real layout


#: (attractive, male, young, partition) per image, in file order: the test partition holds each of the
#: eight (attractive, male, young) cells at least once, (1, 1, 1) twice.
CELEBA_ROWS = [
    (1, 1, 1, 0), (0, 1, 0, 0), (1, 0, 1, 0), (0, 0, 0, 0), (1, 1, 0, 0), (0, 0, 1, 0), (1, 0, 0, 1),
    (1, 1, 1, 2), (0, 1, 1, 2), (1, 0, 1, 2), (0, 0, 1, 2), (1, 1, 0, 2), (0, 1, 0, 2), (1, 0, 0, 2),
    (0, 0, 0, 2), (1, 1, 1, 2),
]


def celeba_colour(index: int) -> tuple[int, int, int]:
    return (10 + 14 * index, 220 - 12 * index, 90)


@pytest.fixture
def celeba_root(tmp_path, celeba_layout):
    """CELEBA_ROWS in CelebA's on-disk layout under *tmp_path*."""
    rows = [({"Attractive": attractive, "Male": male, "Young": young}, split)
            for attractive, male, young, split in CELEBA_ROWS]
    return celeba_layout(tmp_path, rows, celeba_colour)


def test_celeba_with_two_sensitive_attributes_balances_target_by_intersection(tmp_path, celeba_root):
    data = load_real(f"celeba:{tmp_path}", target="Attractive", sensitive="Male,Young", im_size=8)
    assert data.attributes == ["Male", "Young"] and data.num_groups == 4
    assert data.group_names == ["Male=0, Young=0", "Male=0, Young=1", "Male=1, Young=0", "Male=1, Young=1"]
    train_ids = [i for i, row in enumerate(CELEBA_ROWS) if row[3] == 0]
    assert data.train.y.tolist() == [CELEBA_ROWS[i][0] for i in train_ids]
    assert data.train.attrs.tolist() == [[CELEBA_ROWS[i][1], CELEBA_ROWS[i][2]] for i in train_ids]
    assert data.train.a.tolist() == [2 * CELEBA_ROWS[i][1] + CELEBA_ROWS[i][2] for i in train_ids]
    # Test: one image per (Attractive, intersection) cell, the first of each in file order (the second (1,1,1) is left out).
    cells = sorted((int(y), int(a)) for y, a in zip(data.test.y, data.test.a))
    assert cells == [(y, a) for y in range(2) for a in range(4)]
    assert "000016.jpg" not in data.meta["test_files"] and len(data.meta["test_files"]) == 8
    # Labels travelled with their images: each test image's colour is its row's.
    rows = [int(name[:6]) - 1 for name in data.meta["test_files"]]
    restored = (data.test.x * torch.tensor(data.std)[:, None, None] + torch.tensor(data.mean)[:, None, None])
    expected = torch.tensor([celeba_colour(i) for i in rows], dtype=torch.float32) / 255.0
    assert torch.allclose(restored.mean(dim=(2, 3)), expected, atol=0.03)
    assert data.test.attrs.tolist() == [[CELEBA_ROWS[i][1], CELEBA_ROWS[i][2]] for i in rows]
    # One sensitive attribute: exactly the single-attribute dataset.
    single = load_real(f"celeba:{tmp_path}", target="Attractive", sensitive="Male", im_size=8)
    assert single.attributes is None and single.group_names == ["not Male", "Male"] and single.train.attrs is None


def test_celeba_refuses_unknown_repeated_and_constant_attributes(tmp_path, celeba_root):
    with pytest.raises(InputError, match="unknown attribute 'Old'"):
        load_real(f"celeba:{tmp_path}", sensitive="Male,Old", im_size=8)
    with pytest.raises(ConfigError, match="pick two different"):
        load_real(f"celeba:{tmp_path}", target="Young", sensitive="Male,Young", im_size=8)
    with pytest.raises(InputError, match="'Bald' takes a single value"):
        load_real(f"celeba:{tmp_path}", sensitive="Male,Bald", im_size=8)


# ---------------------------------------------------------------- UTKFace, real layout


def utk_colour(age: int, gender: int, race: int) -> tuple[int, int, int]:
    return (2 * age, 40 + 50 * race, 60 + 120 * gender)


def write_utkface(root: Path) -> int:
    folder = root / "UTKFace" / "part1"
    folder.mkdir(parents=True)
    written = 0
    for bucket, ages in enumerate(([5, 12], [25, 33], [45, 70])):
        for race in (0, 1):
            for gender in (0, 1):
                for k, age in enumerate(ages):
                    name = f"{age}_{gender}_{race}_2017011{bucket}{race}{gender}{k}12345.jpg.chip.jpg"
                    Image.new("RGB", (40, 40), utk_colour(age, gender, race)).save(folder / name, quality=95)
                    written += 1
    Image.new("RGB", (40, 40), (9, 9, 9)).save(folder / "30_1_4_20170116174525125.jpg.chip.jpg")
    return written


def test_utkface_race_and_gender_from_file_names(tmp_path):
    written = write_utkface(tmp_path)
    data = load_real(f"utkface:{tmp_path}", im_size=4, test_per_cell=1, sensitive="race,gender")
    assert data.attributes == ["race", "gender"] and data.num_groups == 8
    assert data.group_names[1] == "race=White, gender=female" and data.group_names[2] == "race=Black, gender=male"
    assert len(data.train) + len(data.test) == written and data.meta["dropped_other_race"] == 1
    for split in (data.train, data.test):
        colour = (split.x * torch.tensor(data.std)[:, None, None] + torch.tensor(data.mean)[:, None, None])
        colour = (colour.mean(dim=(2, 3)) * 255).round()
        race = ((colour[:, 1] - 40) / 50).round().long()
        gender = ((colour[:, 2] - 60) / 120).round().long()
        age = colour[:, 0] / 2
        assert torch.equal(split.attrs, torch.stack([race, gender], dim=1))
        assert torch.equal(split.y, torch.where(age < 20, 0, torch.where(age < 40, 1, 2)).long())
    # Races 2 and 3 have no image here: their intersections are empty cells, named and counted.
    present = set(data.test.a.tolist())
    assert present == {0, 1, 2, 3}
    counts = torch.bincount(data.test.y * 8 + data.test.a, minlength=24).reshape(3, 8)
    assert torch.equal(counts[:, :4], torch.ones(3, 4, dtype=torch.int64)) and counts[:, 4:].sum() == 0
    gender_target = load_real(f"utkface:{tmp_path}", im_size=4, test_per_cell=1, target="gender", sensitive="age")
    assert gender_target.class_names == ["male", "female"] and gender_target.group_names == ["<20", "20-39", ">=40"]
    with pytest.raises(ConfigError, match="both name 'race'"):
        load_real(f"utkface:{tmp_path}", target="race", sensitive="race")
    with pytest.raises(InputError, match="unknown attribute 'hair'"):
        load_real(f"utkface:{tmp_path}", sensitive="race,hair")


# ---------------------------------------------------------------- the embedded two-bias preset


def test_cmnist_fgbg_has_two_biases_and_a_balanced_intersection_test_set():
    data = load_real("cmnist-fgbg", n_train=1000, n_test=50, bias_ratio=0.9, bg_ratio=0.7)
    assert data.attributes == ["foreground", "background"] and data.num_groups == 10
    assert data.group_names[3] == "foreground=green, background=grey"
    y, attrs = data.train.y, data.train.attrs
    own_fg, own_bg = y // 2, y % 2
    assert float((attrs[:, 0] == own_fg).float().mean()) == pytest.approx(0.9, abs=0.01)
    assert float((attrs[:, 1] == own_bg).float().mean()) == pytest.approx(0.7, abs=0.01)
    # Drawn independently within a class: the background's bias is the same among foreground-aligned rows.
    aligned = attrs[:, 0] == own_fg
    assert float((attrs[aligned, 1] == own_bg[aligned]).float().mean()) == pytest.approx(0.7, abs=0.05)
    counts = torch.bincount(data.test.y * 10 + data.test.a, minlength=100).reshape(10, 10)
    assert torch.equal(counts, torch.full((10, 10), 5))
    # Every test image is its own digit in its own colours: stroke where the digit is, background elsewhere.
    from ddaudit.data._mnist import embedded_digits
    from ddaudit.data._two_bias import BACKGROUND, FOREGROUND

    pixels = data.test.x * torch.tensor(data.std)[:, None, None] + torch.tensor(data.mean)[:, None, None]
    digits = embedded_digits()[0][data.meta["test_index"][data.meta["test_digit"].numpy()]]
    intensity = torch.nn.functional.pad(torch.as_tensor(digits, dtype=torch.float32) / 255, (2, 2, 2, 2))[:, None]
    stroke = torch.tensor([rgb for _, rgb in FOREGROUND])[data.test.attrs[:, 0]][:, :, None, None]
    background = torch.tensor([rgb for _, rgb in BACKGROUND])[data.test.attrs[:, 1]][:, :, None, None]
    assert torch.allclose(pixels, intensity * stroke + (1 - intensity) * background, atol=1e-4)
    # Normalised with constants from the balanced design: the test set, which is balanced, is near mean 0 / std 1.
    assert pixels.shape[1:] == (3, 32, 32)
    assert data.test.x.mean(dim=(0, 2, 3)).abs().max() < 0.1
    assert (data.test.x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1
    only_bg = load_real("cmnist-fgbg", n_train=200, n_test=20, sensitive="background")
    assert only_bg.attributes is None and only_bg.group_names == ["black", "grey"]
    assert float((only_bg.train.a == only_bg.train.y % 2).float().mean()) == pytest.approx(0.8, abs=0.02)


# ---------------------------------------------------------------- one file, other key names


def test_tensors_reads_biased_dd_layout_through_a_key_mapping(tmp_path):
    generator = torch.Generator().manual_seed(9)
    saved = {"training_imgs": torch.rand(30, 3, 28, 28, generator=generator), "training_labs": torch.arange(30) % 10,
             "training_attrs": (torch.arange(30) + 1) % 10, "testing_imgs": torch.rand(20, 3, 28, 28, generator=generator),
             "testing_labs": torch.arange(20) % 10, "testing_attrs": (torch.arange(20) * 3) % 10}
    torch.save(saved, tmp_path / "MNIST_align0.95_severity_1.pth")
    spec = f"tensors:{tmp_path / 'MNIST_align0.95_severity_1.pth'}"
    data = load_real(spec, keys="biased-dd")
    assert torch.equal(data.train.x, saved["training_imgs"]) and torch.equal(data.test.x, saved["testing_imgs"])
    assert torch.equal(data.train.a, saved["training_attrs"]) and torch.equal(data.test.y, saved["testing_labs"])
    assert (data.num_classes, data.num_groups, len(data.train), len(data.test)) == (10, 10, 30, 20)
    test_only = load_real(spec, keys="test.x=testing_imgs,test.y=testing_labs,test.a=testing_attrs")
    assert test_only.train is None and torch.equal(test_only.test.a, saved["testing_attrs"])
    with pytest.raises(InputError, match="no key 'testing_images'.*training_attrs"):
        load_real(spec, keys="test.x=testing_images,test.y=testing_labs,test.a=testing_attrs")
    with pytest.raises(ConfigError, match="missing test.a"):
        load_real(spec, keys="test.x=testing_imgs,test.y=testing_labs")
    with pytest.raises(ConfigError, match="one file"):
        load_real(f"{spec},{tmp_path / 'other.pt'}", keys="biased-dd")


# ---------------------------------------------------------------- folder with several group columns


def test_folder_with_two_group_columns(tmp_path):
    lines = ["path,label,colour,gender,split"]
    for i in range(16):
        colour, gender, label = ("red", "blue")[i % 2], ("f", "m")[(i // 2) % 2], i % 3
        Image.new("RGB", (6, 6), (10 * i, 100, 50 * (i % 2))).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{label},{colour},{gender},{'train' if i < 10 else 'test'}")
    (tmp_path / "groups.csv").write_text("\n".join(lines) + "\n")
    data = load_real(f"folder:{tmp_path}", sensitive="colour,gender")
    assert data.attributes == ["colour", "gender"] and data.attribute_values == [["blue", "red"], ["f", "m"]]
    assert data.group_names == ["colour=blue, gender=f", "colour=blue, gender=m", "colour=red, gender=f",
                                "colour=red, gender=m"]
    expected = [[1 - i % 2, (i // 2) % 2] for i in range(10)]
    assert data.train.attrs.tolist() == expected
    assert data.train.a.tolist() == [2 * c + g for c, g in expected]
    one = load_real(f"folder:{tmp_path}", sensitive="gender")
    assert one.attributes is None and one.group_names == ["f", "m"] and one.train.a.tolist() == [g for _, g in expected]
    with pytest.raises(InputError, match="unknown attribute 'age'.*colour, gender"):
        load_real(f"folder:{tmp_path}", sensitive="colour,age")
    with pytest.raises(InputError, match="lacks column"):
        load_real(f"folder:{tmp_path}")  # no 'group' column and no sensitive: as before, refused
