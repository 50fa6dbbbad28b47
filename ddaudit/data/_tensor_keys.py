"""A tensors file saved under other key names, both splits in one file: option ``keys`` of ``tensors:FILE``.

Some codebases save a whole biased dataset as one dict, e.g. Biased-DD's
``{"training_imgs", "training_labs", "training_attrs", "testing_imgs",
"testing_labs", "testing_attrs"}``. A key mapping names, for each split, the
keys holding ``x``, ``y`` and ``a``: ``keys=biased-dd`` is that layout, or spell
one out as ``train.x=KEY,train.y=KEY,train.a=KEY,test.x=KEY,test.y=KEY,test.a=KEY``
(the ``train.*`` entries may be left out for a test split alone).
"""

from __future__ import annotations

from pathlib import Path

from ddaudit.errors import ConfigError, InputError

#: Named layouts ``keys=`` accepts.
LAYOUTS = {
    "biased-dd": "train.x=training_imgs,train.y=training_labs,train.a=training_attrs,"
                 "test.x=testing_imgs,test.y=testing_labs,test.a=testing_attrs",
}
FIELDS = ("x", "y", "a")
SPLITS = ("train", "test")
#: Keys copied to every split as they are (names of classes, groups and attributes).
SHARED_KEYS = ("class_names", "group_names", "attributes", "attribute_values")

BAD_KEYS = ("option keys={spec!r}: expected a layout ({layouts}) or 'test.x=KEY,test.y=KEY,test.a=KEY' with "
            "optionally the same three for train; {why}")
MISSING_KEY = "{path}: no key {key!r} (keys= maps {split}.{field} to it); the file holds: {available}"
ONE_FILE = "option keys= reads both splits from one file: give 'tensors:FILE', not {root!r}"


def parse_keys(spec) -> dict[str, dict[str, str]]:
    """``{split: {field: key}}`` from a layout name or an explicit mapping."""
    text = LAYOUTS.get(str(spec).strip().lower(), str(spec))
    layouts = ", ".join(LAYOUTS)
    mapping: dict[str, dict[str, str]] = {}
    for pair in text.split(","):
        name, _, key = pair.partition("=")
        split, _, field = name.strip().partition(".")
        if not key.strip() or split not in SPLITS or field not in FIELDS:
            raise ConfigError(BAD_KEYS.format(spec=spec, layouts=layouts, why=f"cannot read {pair.strip()!r}"))
        if field in mapping.get(split, {}):
            raise ConfigError(BAD_KEYS.format(spec=spec, layouts=layouts, why=f"{split}.{field} is given twice"))
        mapping.setdefault(split, {})[field] = key.strip()
    if "test" not in mapping:
        raise ConfigError(BAD_KEYS.format(spec=spec, layouts=layouts, why="no test split"))
    for split, fields in mapping.items():
        missing = [f"{split}.{f}" for f in FIELDS if f not in fields]
        if missing:
            raise ConfigError(BAD_KEYS.format(spec=spec, layouts=layouts, why=f"missing {', '.join(missing)}"))
    return mapping


def split_by_keys(path: Path, content: dict, spec) -> list[tuple[Path, dict]]:
    """The ``(path, {x, y, a, names...})`` of each mapped split, training split first."""
    mapping = parse_keys(spec)
    available = ", ".join(sorted(str(k) for k in content)) or "nothing"
    out = []
    for split in SPLITS:
        if split not in mapping:
            continue
        part = {key: content[key] for key in SHARED_KEYS if key in content}
        for field, key in mapping[split].items():
            if key not in content:
                raise InputError(MISSING_KEY.format(path=path, key=key, split=split, field=field, available=available))
            part[field] = content[key]
        out.append((path, part))
    return out
