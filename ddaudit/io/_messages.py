"""One-line messages for synthetic-set input errors, named so tests can assert on them.

Each template is filled with ``str.format`` by the code that raises it and says
what the user can do about the problem.
"""

MISSING_PATH = "{path} does not exist; pass the file or directory your distiller saved"
NEEDS_CODE = (
    "{path} is not a plain tensor file: it needs code to load (refused for safety); "
    "re-save it with torch.save of tensors, dicts and lists only"
)
NPZ_NEEDS_PICKLE = (
    "{path} holds object arrays that need pickle to load (refused for safety); "
    "re-save it with numpy.savez of numeric arrays only"
)
DAMAGED_FILE = "{path} is damaged or is not a {kind} file ({reason}); re-save or re-download it"
UNKNOWN_FORMAT = "unknown synthetic-set format {format!r}; choose one of: {available}"
UNRECOGNISED = "cannot tell which format {path} is in; pass format= one of: {available}"
INDEX_OUT_OF_RANGE = (
    "index {index} is out of range: {path} holds {count} {noun}; "
    "pass an index from {low} to {high}"
)
WRONG_STRUCTURE = "{path} does not look like a {format} file: {problem}"
MISSING_KEYS = (
    "{path} has no images/labels pair: expected keys {expected}, found {found}; "
    "save a dict with 'images' and 'labels'"
)
MISSING_PARTNER = (
    "{path} has no matching {partner} next to it; keep the images and labels files together"
)
BAD_LR = (
    "{path} must hold one positive finite learning rate, found {found}; "
    "re-save it or set the learning rate explicitly"
)

NOT_A_TENSOR = "{where}: {what} is a {found}, expected a tensor or array"
IMAGES_DTYPE = "{where}: images have dtype {dtype}; save them as floating point (or uint8 pixels)"
IMAGES_NDIM = "{where}: images have shape {shape}; expected (N, C, H, W) or (N, H, W)"
EMPTY_SET = "{where}: the synthetic set is empty (0 images); check that distillation finished"
NON_FINITE_IMAGES = (
    "{where}: {count} of {total} image values are NaN or Inf; "
    "the distillation diverged or the file is damaged"
)
LABELS_NDIM = "{where}: labels have shape {shape}; expected hard labels (N,) or soft labels (N, K)"
LABELS_LENGTH = "{where}: {labels} labels for {images} images; the two must have the same length"
NON_INTEGER_LABELS = (
    "{where}: hard labels must be whole class indices, found dtype {dtype}{example}; "
    "save labels as int64"
)
NEGATIVE_LABELS = (
    "{where}: {count} labels are negative (smallest {smallest}); class indices start at 0"
)
NON_FINITE_SOFT_LABELS = (
    "{where}: {count} soft-label values are NaN or Inf; the label learning diverged"
)

NOT_IMAGEFOLDER = (
    "{path} has no class sub-folders with PNG/JPEG images; use one sub-folder per class"
)
EMPTY_CLASS_FOLDER = "{path} has no PNG/JPEG images; remove the folder or add its class images"
DUPLICATE_CLASS_NUMBER = (
    "class folders {first!r} and {second!r} end in the same number {number}; "
    "rename them so each class number appears once"
)
UNREADABLE_IMAGE = "{path} cannot be read as an image ({reason}); re-save or remove it"
UNSUPPORTED_MODE = "{path} has image mode {mode}; save the images as RGB or greyscale (L)"
MIXED_IMAGES = (
    "{path} is {found} but {first} is {expected}; "
    "all images in an ImageFolder must share one size and mode"
)
BAD_FACTOR = "multi-formation factor must be a positive integer, got {factor!r}"
