"""Synthetic images unlike any real group: a feature-space distance calibrated on real images.

The group classifier names the most likely group of every image, even of an image
that shows no real group: FairDD's synchronized DM blends a class's colours into
one multicoloured digit, and the classifier reads such blends confidently as one
colour (the softmax is not a measure of familiarity). So an image is scored by
its squared Mahalanobis distance, in the classifier's penultimate features, to
the nearest real (class, group) mean, with one covariance pooled over the cells
(Ledoit-Wolf shrinkage keeps it invertible when cells are small). The threshold
is a high quantile of the same score on held-out real images, perturbed with the
Gaussian noise the classifier was trained to ignore (distilled images carry such
noise; clean real images would put the threshold too low for them). An image
above it is ``unknown``: about ``1 - quantile`` of real images are, by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf

from ddaudit.errors import ConfigError

DEFAULT_UNKNOWN_QUANTILE = 0.99


@dataclass
class UnknownDetector:
    """Cell means ``(K, D)``, the pooled precision ``(D, D)`` and the calibrated threshold."""

    means: np.ndarray
    precision: np.ndarray
    threshold: float
    quantile: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to the nearest cell mean (Euclidean after
        whitening with the precision's Cholesky factor, as matrix products)."""
        whiten = np.linalg.cholesky(self.precision)
        z = np.asarray(features, dtype=np.float64) @ whiten
        centres = self.means @ whiten
        squared = (z ** 2).sum(axis=1)[:, None] - 2.0 * z @ centres.T + (centres ** 2).sum(axis=1)[None]
        return np.maximum(squared.min(axis=1), 0.0) if len(centres) else np.full(len(z), np.inf)

    def unknown(self, features: np.ndarray) -> np.ndarray:
        """True for rows farther from every real cell than the calibration quantile allows."""
        return self.scores(features) > self.threshold


def check_quantile(quantile: float) -> float:
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"--unknown-quantile must lie strictly between 0 and 1, got {quantile!r}")
    return float(quantile)


def fit_detector(features: np.ndarray, cells: np.ndarray, calibration: np.ndarray, *,
                 quantile: float = DEFAULT_UNKNOWN_QUANTILE) -> UnknownDetector:
    """Cell means and pooled within-cell covariance from real training *features* (rows labelled by
    *cells*), threshold at *quantile* of the scores of the real *calibration* features."""
    quantile = check_quantile(quantile)
    features, cells = np.asarray(features, dtype=np.float64), np.asarray(cells)
    if len(features) < 2 or len(calibration) == 0:
        raise ConfigError("the unknown-image detector needs real training and held-out features")
    values, index = np.unique(cells, return_inverse=True)
    means = np.stack([features[index == k].mean(axis=0) for k in range(len(values))])
    precision = LedoitWolf(assume_centered=True).fit(features - means[index]).precision_
    detector = UnknownDetector(means, precision, threshold=np.inf, quantile=quantile)
    detector.threshold = float(np.quantile(detector.scores(calibration), quantile, method="higher"))
    return detector
