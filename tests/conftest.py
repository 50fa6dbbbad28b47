"""Shared test settings: small thread counts keep the suite predictable on 2-core CI."""

import os
import tempfile

import pytest
import torch

torch.set_num_threads(int(os.environ.get("DDAUDIT_TEST_THREADS", "1")))

# Trained probe classifiers and reference predictions go to a throwaway folder, never to the
# user's own cache (subprocesses inherit it through the environment).
os.environ.setdefault("DDAUDIT_CACHE_DIR", tempfile.mkdtemp(prefix="ddaudit-test-cache-"))


# ---------------------------------------------------------------- CelebA's on-disk layout

#: The 40 attributes of list_attr_celeba.txt, in the official order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def write_celeba_layout(root, rows, colour):
    """CelebA's real layout under ``root/celeba``; return that folder.

    *rows*: one ``({attribute: 0 or 1}, partition)`` per image in file order (attributes
    not named are -1); *colour(i)*: image i's face colour. Each image is 178x218 like
    the aligned ones: a coloured face area between two blue bands.
    """
    import numpy as np
    from PIL import Image

    base = root / "celeba"
    images = base / "img_align_celeba"
    images.mkdir(parents=True)
    lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES) + " "]
    partition = []
    for i, (attributes, split) in enumerate(rows):
        name = f"{i + 1:06d}.jpg"
        values = [-1] * len(CELEBA_ATTRIBUTES)
        for attribute, value in attributes.items():
            values[CELEBA_ATTRIBUTES.index(attribute)] = 1 if value else -1
        lines.append(name + " " + " ".join(f"{v:2d}" for v in values))
        partition.append(f"{name} {split}")
        canvas = np.zeros((218, 178, 3), dtype=np.uint8)
        canvas[:, :] = (0, 0, 255)
        canvas[20:198] = colour(i)
        Image.fromarray(canvas).save(images / name, quality=95)
    (base / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (base / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return base


@pytest.fixture
def celeba_layout():
    """:func:`write_celeba_layout`, for tests that read CelebA from disk."""
    return write_celeba_layout
