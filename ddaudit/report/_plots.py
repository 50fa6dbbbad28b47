"""Pictures of an audit: the distilled set by predicted group, heat maps, references.

Every function takes plain tensors or the report dict and returns a matplotlib
figure (Agg backend: no display needed); :func:`save_figures` writes PNG files
and :func:`figure_png` gives the bytes the HTML page inlines.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

BORDER = 3
GAP = 2
UNSURE_GREY = np.array([0.6, 0.6, 0.6])
#: Framed tiles sit on mid-light grey, so white and grey frames stay visible.
FRAMED_BACKGROUND = 0.8


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def group_colours(num_groups: int, names: Sequence[str] = ()) -> np.ndarray:
    """One RGB colour per group: the group's own colour when every group is named
    after one (Colored-MNIST's palette), else tab10, tab20 or evenly spaced hues."""
    from matplotlib import colormaps
    from matplotlib.colors import is_color_like, to_rgb

    if len(names) == num_groups and num_groups and all(is_color_like(str(n)) for n in names):
        return np.array([to_rgb(str(n)) for n in names])

    if num_groups <= 10:
        cmap = colormaps["tab10"]
        return np.array([cmap(i)[:3] for i in range(num_groups)])
    if num_groups <= 20:
        cmap = colormaps["tab20"]
        return np.array([cmap(i)[:3] for i in range(num_groups)])
    cmap = colormaps["hsv"]
    return np.array([cmap(i / num_groups)[:3] for i in range(num_groups)])


def _rgb(pixels: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, 3) numpy."""
    x = pixels.detach().float().clamp(0, 1).cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    elif x.shape[1] != 3:
        x = x[:, :1].repeat(1, 3, 1, 1)
    return x.permute(0, 2, 3, 1).numpy()


def _class_rows(labels: torch.Tensor, num_classes: int, per_row: int) -> list[list[int]]:
    rows = []
    for cls in range(num_classes):
        members = torch.nonzero(labels == cls).flatten().tolist()
        rows.append(members[:per_row])
    return rows


def tile_canvas(
    pixels: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    per_row: int,
    border_colours: np.ndarray | None = None,
    unsure: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """A white canvas of tiles, one row per class; each tile optionally framed in a colour.

    Unsure tiles get a dashed frame (the colour alternating with grey). Returns the
    canvas and the tile pitch in pixels.
    """
    images = _rgb(pixels)
    h, w = images.shape[1:3]
    pitch_h, pitch_w = h + 2 * BORDER + GAP, w + 2 * BORDER + GAP
    rows = _class_rows(labels, num_classes, per_row)
    fill = 1.0 if border_colours is None else FRAMED_BACKGROUND
    canvas = np.full((num_classes * pitch_h + GAP, per_row * pitch_w + GAP, 3), fill)
    for r, members in enumerate(rows):
        for c, index in enumerate(members):
            top, left = GAP + r * pitch_h, GAP + c * pitch_w
            if border_colours is not None:
                frame = np.broadcast_to(border_colours[index], (h + 2 * BORDER, w + 2 * BORDER, 3)).copy()
                if unsure is not None and unsure[index]:
                    dash = ((np.arange(h + 2 * BORDER)[:, None] + np.arange(w + 2 * BORDER)[None, :]) // 4) % 2 == 1
                    frame[dash] = UNSURE_GREY
                canvas[top:top + h + 2 * BORDER, left:left + w + 2 * BORDER] = frame
            canvas[top + BORDER:top + BORDER + h, left + BORDER:left + BORDER + w] = images[index]
    return canvas, pitch_h


def _per_row(labels: torch.Tensor, limit: int) -> int:
    counts = torch.bincount(labels)
    return max(1, min(limit, int(counts.max()) if counts.numel() else 1))


def composition_grid(
    pixels: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    confidence: torch.Tensor,
    *,
    class_names: Sequence[str],
    group_names: Sequence[str],
    min_confidence: float,
    max_per_class: int = 10,
    title: str = "distilled set, framed by predicted group",
    colours: np.ndarray | None = None,
):
    """The synthetic set, one row per class, each image framed in its predicted group's colour."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    num_classes, num_groups = len(class_names), len(group_names)
    colours = group_colours(num_groups, group_names) if colours is None else np.asarray(colours, dtype=float)
    per_row = _per_row(labels, max_per_class)
    unsure = (confidence < min_confidence).numpy()
    canvas, pitch = tile_canvas(pixels, labels, num_classes, per_row=per_row,
                                border_colours=colours[groups.numpy()], unsure=unsure)
    width = min(14.0, 1.2 + 0.62 * per_row)
    fig, ax = plt.subplots(figsize=(width, 0.62 * num_classes + 1.6))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([GAP + (i + 0.5) * pitch for i in range(num_classes)])
    ax.set_yticklabels([str(n) for n in class_names])
    ax.set_ylabel("class")
    shown = int(torch.bincount(labels).max()) if len(labels) else 0
    suffix = f" (first {per_row} of {shown} per class)" if shown > per_row else ""
    ax.set_title(title + suffix, fontsize=10)
    handles = [Patch(facecolor=colours[g], edgecolor="0.4", label=str(group_names[g])) for g in range(num_groups)]
    if unsure.any():
        handles.append(Patch(facecolor="white", edgecolor="grey", hatch="//", label=f"unsure (p < {min_confidence:g})"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=min(6, len(handles)),
              frameon=False, fontsize=8, title="predicted group", title_fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()
    return fig


def side_by_side(
    syn_pixels: torch.Tensor,
    syn_labels: torch.Tensor,
    ref_pixels: torch.Tensor,
    ref_labels: torch.Tensor,
    *,
    class_names: Sequence[str],
    max_per_class: int = 10,
    ref_title: str = "random real subset (same IPC)",
):
    """The distilled set beside the real reference images of each class."""
    plt = _pyplot()
    num_classes = len(class_names)
    per_row = max(_per_row(syn_labels, max_per_class), _per_row(ref_labels, max_per_class))
    fig, axes = plt.subplots(1, 2, figsize=(min(16.0, 2 * (1.0 + 0.55 * per_row)), 0.6 * num_classes + 1.0))
    for ax, pixels, labels, title in ((axes[0], syn_pixels, syn_labels, "distilled set"),
                                      (axes[1], ref_pixels, ref_labels, ref_title)):
        canvas, pitch = tile_canvas(pixels, labels, num_classes, per_row=per_row)
        ax.imshow(canvas, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([GAP + (i + 0.5) * pitch for i in range(num_classes)])
        ax.set_yticklabels([str(n) for n in class_names])
        ax.set_title(title, fontsize=10)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.tight_layout()
    return fig


def _heatmap(matrix: np.ndarray, text: list[list[str]], *, row_names, col_names, title: str, cmap: str,
             colorbar: str, marks: np.ndarray | None = None, mark_label: str = ""):
    plt = _pyplot()
    rows, cols = matrix.shape
    fig, ax = plt.subplots(figsize=(min(14.0, 1.8 + 0.75 * cols), 0.45 * rows + 1.6))
    from matplotlib import colormaps

    masked = np.ma.masked_invalid(matrix)
    image = ax.imshow(masked, cmap=colormaps[cmap].with_extremes(bad="#dddddd"), vmin=0.0, vmax=1.0, aspect="auto")
    for r in range(rows):
        for c in range(cols):
            value = matrix[r, c]
            dark = not np.isnan(value) and (value < 0.35 if cmap != "Blues" else value > 0.55)
            ax.text(c, r, text[r][c], ha="center", va="center", fontsize=8, color="white" if dark else "black")
            if marks is not None and marks[r, c]:
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    ax.set_xticks(range(cols))
    ax.set_xticklabels([str(n) for n in col_names], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(rows))
    ax.set_yticklabels([str(n) for n in row_names], fontsize=8)
    ax.set_xlabel("protected group")
    ax.set_ylabel("class")
    ax.set_title(title + (f"\n({mark_label})" if mark_label else ""), fontsize=10)
    fig.colorbar(image, ax=ax, label=colorbar, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return fig


def accuracy_heatmap(report: dict, *, min_group_size: int | None = None):
    """Evaluator accuracy per (class, group) test cell from the report's ``cells``; small cells framed."""
    real = report.get("real", {})
    classes, groups = real.get("class_names") or [], real.get("group_names") or []
    size = min_group_size if min_group_size is not None else (report.get("settings") or {}).get("min_group_size", 20)
    matrix = np.full((len(classes), len(groups)), np.nan)
    text = [["" for _ in groups] for _ in classes]
    marks = np.zeros_like(matrix, dtype=bool)
    for cell in report.get("cells", []):
        c, g = cell["class"], cell["group"]
        if c < len(classes) and g < len(groups):
            if cell.get("accuracy") is not None:
                matrix[c, g] = cell["accuracy"]
                text[c][g] = f"{100 * cell['accuracy']:.0f}"
            else:
                text[c][g] = "-"
            marks[c, g] = bool(cell["small"]) if "small" in cell else cell.get("count", 0) < size
    label = f"framed: fewer than {size} test images" if marks.any() else ""
    return _heatmap(matrix, text, row_names=classes, col_names=groups, cmap="RdYlGn", colorbar="accuracy",
                    title="evaluator accuracy (%) per class x group on the real test set", marks=marks, mark_label=label)


def composition_heatmap(report: dict):
    """Predicted group shares per class; the real class's majority group framed."""
    real, comp = report.get("real", {}), report.get("composition") or {}
    classes, groups = real.get("class_names") or [], real.get("group_names") or []
    matrix = np.full((len(classes), len(groups)), np.nan)
    text = [["" for _ in groups] for _ in classes]
    marks = np.zeros_like(matrix, dtype=bool)
    for entry in comp.get("classes", []):
        c = entry["class"]
        if c >= len(classes) or not entry.get("images"):
            continue
        for g, share in enumerate(entry["shares"][:len(groups)]):
            matrix[c, g] = share
            text[c][g] = f"{100 * share:.0f}" if share > 0 else ""
        if entry.get("real_majority_group") is not None:
            marks[c, entry["real_majority_group"]] = True
    return _heatmap(matrix, text, row_names=classes, col_names=groups, cmap="Blues", colorbar="share of the class",
                    title="predicted group share (%) per class of the distilled set",
                    marks=marks, mark_label="framed: the real class's majority group")


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def save_figures(figures: dict[str, bytes], folder: str | Path, force: bool) -> dict[str, str]:
    """Write ``{name: png bytes}`` as ``folder/name.png`` (never over an existing file without *force*)."""
    from ddaudit.errors import ConfigError
    from ddaudit.report._files import check_writable

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--plots {folder} is a file; give a folder")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: check_writable(folder / f"{name}.png", force) for name in figures}
    for name, data in figures.items():
        tmp = paths[name].with_name(f".{paths[name].name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(paths[name])
    return {name: str(path) for name, path in paths.items()}


class PictureInputs:
    """The tensors behind the pictures: synthetic pixels in [0, 1] with their classes and
    predicted groups (``groups``/``confidence`` may be None when no probe ran) and the
    real reference images shown beside them."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, *, groups: torch.Tensor | None = None,
                 confidence: torch.Tensor | None = None, min_confidence: float = 0.5,
                 ref_pixels: torch.Tensor | None = None, ref_labels: torch.Tensor | None = None,
                 group_colours: Sequence[Sequence[float]] | None = None) -> None:
        self.pixels, self.labels = pixels, labels
        self.group_colours = group_colours
        self.groups, self.confidence, self.min_confidence = groups, confidence, min_confidence
        self.ref_pixels, self.ref_labels = ref_pixels, ref_labels


def render_pictures(report: dict, inputs: PictureInputs | None, *, dpi: int = 100) -> dict[str, bytes]:
    """Every picture the report supports, as ``{name: PNG bytes}`` in reading order."""
    real = report.get("real", {})
    classes, groups = real.get("class_names") or [], real.get("group_names") or []
    figures: dict[str, bytes] = {}
    if inputs is not None and inputs.groups is not None:
        figures["synthetic_by_group"] = figure_png(composition_grid(
            inputs.pixels, inputs.labels, inputs.groups, inputs.confidence, class_names=classes, group_names=groups,
            min_confidence=inputs.min_confidence, colours=inputs.group_colours), dpi)
    if report.get("composition"):
        figures["composition"] = figure_png(composition_heatmap(report), dpi)
    if report.get("cells"):
        figures["accuracy_by_cell"] = figure_png(accuracy_heatmap(report), dpi)
    if inputs is not None and inputs.ref_pixels is not None:
        figures["distilled_vs_reference"] = figure_png(side_by_side(
            inputs.pixels, inputs.labels, inputs.ref_pixels, inputs.ref_labels, class_names=classes), dpi)
    return figures
