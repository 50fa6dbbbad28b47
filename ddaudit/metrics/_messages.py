"""One-line messages of the metrics package, named so tests and reports can match them.

Errors are filled with ``str.format`` and raised as :class:`~ddaudit.errors.InputError`
or :class:`~ddaudit.errors.ConfigError`; warnings are the strings collected in
:attr:`MetricsResult.warnings`.
"""

# Input errors.
NOT_LABELS = "{name} must be a 1-D array of integer labels, got shape {shape} and dtype {dtype}"
NOT_PREDICTIONS = (
    "predictions must be class indices of shape (N,) or (evaluators, N), got shape {shape} and dtype {dtype}; "
    "pass argmax of the logits"
)
LENGTH_MISMATCH = "{name} has {found} entries but y_true has {expected}; pass one entry per test sample"
TRAIN_LENGTH_MISMATCH = "train_y has {labels} entries but train_a has {groups}; pass one group per training sample"
TRAIN_PAIR = "pass both train_y and train_a (real training labels and groups) or neither"
OUT_OF_RANGE = "{name} holds values outside 0..{high}: found {low_found}..{high_found}; check num_classes/num_groups"
EMPTY_TEST_SET = "the test set is empty; fairness metrics need at least one test sample"
NAMES_LENGTH = "{name} has {found} names but {expected} are needed; pass exactly one name per index"
ONE_EVALUATOR = "fairlearn views take one evaluator's predictions of shape (N,), got {shape}; call them once per row"
MISSING_METRIC = "metric {name!r} is missing from the {side} metrics; compute both sides with the same metric names"

# Configuration errors.
BAD_COUNT = "{name} must be a positive integer, got {value!r}"
BAD_N_BOOT = "n_boot must be 0 (no bootstrap) or a positive integer, got {value!r}"
BAD_CONFIDENCE = "confidence must be strictly between 0 and 1 (e.g. 0.95), got {value!r}"
BAD_MIN_GROUP_SIZE = "min_group_size must be a non-negative integer, got {value!r}"
BAD_INTERVAL = "interval must be one of {choices}, got {value!r}"

# Warnings.
SMALL_CELLS = (
    "{count} (class, group) test cell(s) have fewer than {min_size} samples: {cells}; "
    "their accuracies are noisy, add test data before trusting gaps that involve them"
)
EMPTY_CELLS = (
    "{count} (class, group) test cell(s) are empty: {cells}; they are left out of DEO and "
    "worst-group accuracy (FairDD would count them as accuracy 0)"
)
CLASSES_WITHOUT_GAP = (
    "class(es) {classes} have fewer than 2 groups in the test set and are left out of DEO_M/DEO_A"
)
NO_TRAINING_DATA = (
    "bias_amplification is NaN: directional bias amplification needs the real training labels and groups "
    "(pass train_y and train_a)"
)
BIAS_AMPLIFICATION_SKIPPED = (
    "bias_amplification left out {count} of {total} (group, class) pairs whose group has no test samples "
    "or whose group or class has no training samples"
)
RATE_UNDEFINED = (
    "{metric}: class(es) {classes} have fewer than 2 groups with a defined rate and are left out of the maximum"
)
ESTIMATE_OUTSIDE_INTERVAL = (
    "{metric}: the estimate {mean:.4f} lies {side} its bootstrap interval [{low:.4f}, {high:.4f}]: "
    "sampling noise in the (class, group) cells biases max/min statistics; trust the interval, "
    "or add test data to shrink the bias"
)
SINGLE_EVALUATOR = (
    "only 1 evaluator: std is 0 and no interval over evaluators exists; "
    "train at least 2 evaluators to see model-to-model spread"
)
