"""A seeded generator of realistic long-tailed multilabel data.

Two generative models, both with labels correlated through latent topics:

* ``kind="dense"`` (presets ``small``, ``medium``, ``seed``): a Gaussian latent-factor model. Each
  example has an observed latent ``z`` (K dims, the features reveal it through a noisy
  linear map) and a hidden latent ``h`` (H dims, the features do not see it). Label c
  fires when ``a_c <u_c, z> + sqrt(1 - a_c^2) <v_c, h>`` exceeds the Gaussian quantile
  that gives it prevalence ``p_c`` exactly in expectation. Label directions ``u_c``
  cluster around topic centres, so labels of a topic co-occur. The visible share of the
  signal ``a_c`` shrinks for rare labels, so rare labels are harder, and the hidden part
  caps what any model can reach (labels are learnable but noisy). Prevalences follow
  ``p_min + (p_max - p_min) * u**shape`` over quantiles ``u``: most labels sit near
  ``p_min``, with a tail of frequent ones; ``shape`` is solved so that the mean number of
  labels per example hits ``mean_labels``. The model is known, so each dense dataset
  carries its Bayes-optimal predictor, :class:`DenseOracle` (``data.oracle``): the
  ceiling any model trained on the features can approach.
* ``kind="sparse"`` (presets ``sparse``, ``extreme``): a topic model for few labels per
  example with Zipf-like label popularity: each example picks a topic, then
  ``1 + Poisson(mean_labels - 1)`` labels from the topic's popularity-weighted labels
  (some from the global distribution); features are the topic's embedding plus the mean
  embedding of the example's labels plus noise.

Example
-------
>>> from longtail.datasets import make_long_tail
>>> data = make_long_tail("small", seed=0)
>>> data.features.shape[0] == len(data.labels)
True
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
from scipy import special

from longtail._core.checks import check_positive_int
from longtail._core.rng import Stream, derive_seed, kernel_seed
from longtail.datasets import _synthetic_kernels as SK
from longtail.datasets.label_matrix import LabelMatrix

#: Preset parameters. ``dense`` presets give prevalence range and mean cardinality;
#: ``sparse`` presets give mean cardinality and the Zipf exponent of label popularity.
PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(kind="dense", n_examples=12_000, n_labels=500, mean_labels=8.2,
                  min_prevalence=0.011, max_prevalence=0.15, n_features=64,
                  n_latent=32, n_hidden=24, n_topics=20),
    "medium": dict(kind="dense", n_examples=20_000, n_labels=2_000, mean_labels=33.0,
                   min_prevalence=0.011, max_prevalence=0.15, n_features=128,
                   n_latent=48, n_hidden=32, n_topics=30),
    "seed": dict(kind="dense", n_examples=80_000, n_labels=7_900, mean_labels=130.0,
                 min_prevalence=0.011, max_prevalence=0.15, n_features=128,
                 n_latent=64, n_hidden=32, n_topics=60),
    "sparse": dict(kind="sparse", n_examples=80_000, n_labels=7_900, mean_labels=3.0,
                   zipf=0.9, n_features=64, n_topics=200),
    "extreme": dict(kind="sparse", n_examples=3_000_000, n_labels=670_000, mean_labels=5.0,
                    zipf=1.0, n_features=32, n_topics=2_000),
}


#: Standard deviation of the isotropic Gaussian noise the dense model adds to the features.
FEATURE_NOISE: float = 0.5

#: Elements of the largest temporary (rows x labels) one oracle chunk may hold.
_ORACLE_CHUNK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True, eq=False)
class DenseOracle:
    """The Bayes-optimal ``P(y_c = 1 | x)`` of the dense generative model.

    The dense model draws ``z ~ N(0, I_K)`` (visible) and ``h ~ N(0, I_H)`` (hidden),
    features ``x = mix^T z + noise * eps`` and label scores
    ``s_c = <w_c, z> + <v'_c, h> ~ N(0, 1)`` with ``w_c = a_c u_c`` (``directions``).
    Given ``x``, ``z`` is Gaussian with precision ``A = I + mix mix^T / noise**2``,
    covariance ``covariance = A^-1`` and mean ``mu(x) = covariance mix x / noise**2``, so
    ``s_c | x ~ N(<w_c, mu(x)>, sd_c**2)`` with ``sd_c**2 = w_c^T covariance w_c + 1 -
    |w_c|**2`` and ``P(y_c = 1 | x) = Phi((<w_c, mu(x)> - t_c) / sd_c)``.

    The generator makes exactly ``round(p_c n)`` top-scoring examples positive; the
    oracle uses the population threshold ``t_c = Phi^-1(1 - p_c)`` instead, so its
    probabilities are exact in the large-``n`` limit (off by ``O(1/sqrt(n))`` in the
    threshold for a finite sample). Its ranking of examples for one label is exact
    regardless: it is monotone in ``<w_c, mu(x)>``, so per-label metrics (per-label
    and macro AP) are those of the Bayes-optimal ranking.

    Parameters
    ----------
    mix : array (K, d)
        The linear map from the visible latent to the features.
    directions : array (L, K)
        Visible label directions ``a_c u_c`` (norms < 1).
    covariance : array (K, K)
        Posterior covariance of the visible latent given the features.
    thresholds : array (L,)
        Score thresholds ``t_c``.
    sd : array (L,)
        Posterior standard deviation of each label's score given the features (> 0).
    noise : float
        Standard deviation of the feature noise (``longtail.datasets.synthetic.FEATURE_NOISE``).

    Example
    -------
    >>> data = make_long_tail("small", seed=0, n_examples=1000)
    >>> p = data.oracle.predict_proba(data.features)
    >>> p.shape, p.dtype, bool(((p > 0) & (p < 1)).all())
    ((1000, 500), dtype('float32'), True)
    """

    mix: np.ndarray
    directions: np.ndarray
    covariance: np.ndarray
    thresholds: np.ndarray
    sd: np.ndarray
    noise: float = FEATURE_NOISE
    _weights: np.ndarray = dataclasses.field(init=False, repr=False)
    _bias: np.ndarray = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        def owned(name: str, dtype: Any, ndim: int) -> np.ndarray:
            a = np.array(getattr(self, name), dtype=dtype, order="C", copy=True)
            if a.ndim != ndim:
                raise ValueError(f"DenseOracle {name} must be {ndim}-D, got shape {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"DenseOracle {name} must be finite")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
            return a

        mix = owned("mix", np.float32, 2)
        directions = owned("directions", np.float32, 2)
        cov = owned("covariance", np.float64, 2)
        t = owned("thresholds", np.float64, 1)
        sd = owned("sd", np.float64, 1)
        K, L = mix.shape[0], directions.shape[0]
        if directions.shape[1] != K or cov.shape != (K, K) or t.shape != (L,) or sd.shape != (L,):
            raise ValueError(
                f"DenseOracle shapes do not fit: mix {mix.shape} (K, d), directions "
                f"{directions.shape} (L, K), covariance {cov.shape} (K, K), thresholds "
                f"{t.shape} (L,), sd {sd.shape} (L,)")
        if not (sd > 0).all():
            raise ValueError("DenseOracle sd must be > 0")
        noise = float(self.noise)
        if not (math.isfinite(noise) and noise > 0):
            raise ValueError(f"DenseOracle noise must be a finite number > 0, got {self.noise!r}")
        object.__setattr__(self, "noise", noise)
        # margin_c(x) = (<w_c, mu(x)> - t_c) / sd_c = x @ weights[:, c] - bias[c]
        weights = (mix.astype(np.float64).T @ cov @ directions.astype(np.float64).T
                   / (noise * noise)) / sd
        weights.flags.writeable = False
        bias = t / sd
        bias.flags.writeable = False
        object.__setattr__(self, "_weights", weights)
        object.__setattr__(self, "_bias", bias)

    @property
    def n_features(self) -> int:
        """Number of feature columns ``d`` the oracle expects."""
        return int(self.mix.shape[1])

    @property
    def n_labels(self) -> int:
        """Number of labels ``L``."""
        return int(self.directions.shape[0])

    def _rows(self, features: Any, chunk_rows: int | None, width: int):
        """Checked features, then ``(start, stop, float64 block)`` row chunks."""
        if not isinstance(features, np.ndarray):
            if hasattr(features, "detach"):  # a torch tensor
                features = features.detach().cpu().numpy()
            else:
                features = np.asarray(features)
        if features.dtype.kind not in "biuf":
            raise TypeError(f"features must be a real (float or integer) array, got dtype "
                            f"{features.dtype}")
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"features must have shape (n, {self.n_features}), got shape "
                             f"{features.shape}")
        chunk = check_positive_int("chunk_rows", chunk_rows, allow_none=True)
        if chunk is None:
            chunk = max(1, _ORACLE_CHUNK_ELEMENTS // max(width, self.n_features, 1))
        n = features.shape[0]
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            x = features[r0:r1].astype(np.float64)
            finite = np.isfinite(x).all(axis=1)
            if not finite.all():
                raise ValueError(f"features must be finite: row {r0 + int(np.argmin(finite))} "
                                 f"holds NaN or inf")
            yield r0, r1, x

    def _margins(self, x: np.ndarray) -> np.ndarray:
        m = x @ self._weights
        m -= self._bias
        return m

    def posterior_mean(self, features: Any, *, chunk_rows: int | None = None) -> np.ndarray:
        """``E[z | x]`` for each row: float64 (n, K).

        Example
        -------
        >>> data = make_long_tail("small", seed=0, n_examples=100)
        >>> data.oracle.posterior_mean(data.features).shape
        (100, 32)
        """
        K = self.mix.shape[0]
        out = np.empty((self._n_rows(features), K))
        gain = self.mix.astype(np.float64).T @ self.covariance / (self.noise * self.noise)
        for r0, r1, x in self._rows(features, chunk_rows, K):
            out[r0:r1] = x @ gain
        return out

    def logits(self, features: Any, *, chunk_rows: int | None = None) -> np.ndarray:
        """Log-odds of ``P(y_c = 1 | x)``: float32 (n, L), ``sigmoid(logits)`` is the
        probability.

        Computed stably as ``log Phi(m) - log Phi(-m)`` of the probit margin ``m`` (no
        overflow for confident rows). Rows go in chunks of ``chunk_rows`` (default: about
        4M elements of scratch), so the extra memory is ``O(chunk_rows * L)``.

        Parameters
        ----------
        features : array (n, d)
            Finite real features, as the generator makes them.
        chunk_rows : int, optional
            Rows per chunk.

        Example
        -------
        >>> data = make_long_tail("small", seed=0, n_examples=200)
        >>> o = data.oracle
        >>> z = o.logits(data.features)
        >>> bool(np.allclose(1 / (1 + np.exp(-z)), o.predict_proba(data.features), atol=1e-6))
        True
        """
        out = np.empty((self._n_rows(features), self.n_labels), dtype=np.float32)
        for r0, r1, x in self._rows(features, chunk_rows, self.n_labels):
            m = self._margins(x)
            out[r0:r1] = special.log_ndtr(m) - special.log_ndtr(-m)
        return out

    def predict_proba(self, features: Any, *, chunk_rows: int | None = None) -> np.ndarray:
        """``P(y_c = 1 | x)``: float32 (n, L), in chunks as :meth:`logits`.

        Example
        -------
        >>> data = make_long_tail("small", seed=0, n_examples=2000)
        >>> p = data.oracle.predict_proba(data.features)
        >>> bool(abs(p.mean() - data.labels.prevalence().mean()) < 0.002)
        True
        """
        out = np.empty((self._n_rows(features), self.n_labels), dtype=np.float32)
        for r0, r1, x in self._rows(features, chunk_rows, self.n_labels):
            out[r0:r1] = special.ndtr(self._margins(x))
        return out

    @staticmethod
    def _n_rows(features: Any) -> int:
        shape = np.shape(features)
        return int(shape[0]) if len(shape) == 2 else 0


def _dense_oracle(mix: np.ndarray, W: np.ndarray, prev: np.ndarray) -> DenseOracle:
    """The oracle of a dense model from its arrays (float32 ``W`` as the labels use)."""
    K = mix.shape[0]
    m64 = mix.astype(np.float64)
    precision = np.eye(K) + m64 @ m64.T / (FEATURE_NOISE * FEATURE_NOISE)
    cov = np.linalg.inv(precision)
    cov = (cov + cov.T) / 2
    w = W[:, :K].astype(np.float64)
    hidden2 = np.einsum("ij,ij->i", W[:, K:].astype(np.float64), W[:, K:].astype(np.float64))
    var = np.einsum("ij,jk,ik->i", w, cov, w) + hidden2
    return DenseOracle(mix, W[:, :K], cov, -special.ndtri(prev), np.sqrt(var), FEATURE_NOISE)


@dataclasses.dataclass
class LongTailData:
    """Generated data: float32 features (n, d), a LabelMatrix and what made them.

    ``target_prevalence`` and ``oracle`` (a :class:`DenseOracle`, the Bayes-optimal
    predictor) are set for the dense presets and ``None`` for the sparse ones. ``save``
    writes features and labels only.
    """

    features: np.ndarray
    labels: LabelMatrix
    params: dict[str, Any]
    target_prevalence: np.ndarray | None = None
    oracle: DenseOracle | None = None

    def save(self, path: str, *, overwrite: bool = False) -> None:
        """Write an uncompressed Arrow IPC dataset file (see ``write_dataset``)."""
        from longtail.datasets.dataset_file import write_dataset

        write_dataset(path, self.features, self.labels, overwrite=overwrite)


def _prevalence_targets(L: int, p_min: float, p_max: float, mean_labels: float,
                        rng: np.random.Generator) -> np.ndarray:
    target_mean = mean_labels / L
    if not p_min < target_mean < p_max:
        raise ValueError(
            f"mean_labels={mean_labels} needs a mean prevalence {target_mean:.4g} strictly "
            f"between min_prevalence={p_min} and max_prevalence={p_max}")
    u = (np.arange(L) + 0.5) / L
    # solve mean(p_min + span * u**shape) == target_mean for shape (monotone decreasing)
    lo, hi = 1e-3, 1e4
    span = p_max - p_min
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if p_min + span * float(np.mean(u ** mid)) > target_mean:
            lo = mid
        else:
            hi = mid
    p = p_min + span * u ** math.sqrt(lo * hi)
    return rng.permutation(p)


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _make_dense(p: dict[str, Any], seed: int, progress: Callable[[int], None] | None
                ) -> LongTailData:
    n, L, d = p["n_examples"], p["n_labels"], p["n_features"]
    K, H, T = p["n_latent"], p["n_hidden"], p["n_topics"]
    rng = np.random.default_rng(derive_seed(seed, Stream.SYNTH_LABELS))
    prev = _prevalence_targets(L, p["min_prevalence"], p["max_prevalence"], p["mean_labels"], rng)
    topics = _unit_rows(rng.standard_normal((T, K)))
    topic_of_label = rng.integers(0, T, size=L)
    u = _unit_rows(topics[topic_of_label] + 0.45 * _unit_rows(rng.standard_normal((L, K))))
    v = _unit_rows(rng.standard_normal((L, H)))
    # visible share of the signal: 0.9 for the most frequent labels down to 0.7 for rare
    rel = np.log(prev / prev.min()) / max(np.log(prev.max() / prev.min()), 1e-12)
    a = 0.7 + 0.2 * rel
    W = np.concatenate([u * a[:, None], v * np.sqrt(1.0 - a * a)[:, None]], axis=1)
    W = W.astype(np.float32)  # (L, K + H), unit rows: each score is N(0, 1)
    mix = (rng.standard_normal((K, d)) / math.sqrt(K)).astype(np.float32)

    zrng = np.random.default_rng(derive_seed(seed, Stream.SYNTH_ROWS))
    z = zrng.standard_normal((n, K + H), dtype=np.float32)
    features = z[:, :K] @ mix
    features += FEATURE_NOISE * zrng.standard_normal((n, d), dtype=np.float32)
    # Exactly round(p_c * n) positives per label: the top-scoring examples of each label,
    # found label block by label block (scores of a block: (block, n) floats).
    k_c = np.clip(np.rint(prev * n).astype(np.int64), 0, n)
    t_offsets = np.zeros(L + 1, dtype=np.int64)
    np.cumsum(k_c, out=t_offsets[1:])
    t_indices = np.empty(int(t_offsets[-1]), dtype=np.int32)
    block = max(1, min(L, 16_000_000 // max(n, 1)))
    for b0 in range(0, L, block):
        b1 = min(L, b0 + block)
        scores = W[b0:b1] @ z.T
        for j in range(b1 - b0):
            k = int(k_c[b0 + j])
            if k:
                top = np.argpartition(scores[j], n - k)[n - k:]
                top.sort()
                t_indices[t_offsets[b0 + j]:t_offsets[b0 + j + 1]] = top
        if progress is not None:
            progress((b1 - b0) / L)
    by_label = LabelMatrix._trusted(t_offsets, t_indices, n)
    labels = by_label.transpose()
    return LongTailData(features, labels, dict(p, seed=seed), prev, _dense_oracle(mix, W, prev))


def _make_sparse(p: dict[str, Any], seed: int, progress: Callable[[int], None] | None
                 ) -> LongTailData:
    n, L, d, T = p["n_examples"], p["n_labels"], p["n_features"], p["n_topics"]
    rng = np.random.default_rng(derive_seed(seed, Stream.SYNTH_LABELS))
    popularity = (np.arange(L) + 1.0) ** (-p["zipf"])
    label_ids = rng.permutation(L).astype(np.int32)  # popularity rank -> label id
    topic_of_rank = rng.integers(0, T, size=L)
    order = np.argsort(topic_of_rank, kind="stable")
    topic_labels = label_ids[order]
    label_cum = np.cumsum(popularity[order])
    topic_start = np.searchsorted(topic_of_rank[order], np.arange(T + 1)).astype(np.int64)
    topic_weight = np.bincount(topic_of_rank, weights=popularity, minlength=T)
    topic_cum = np.cumsum(topic_weight)
    topic_of_row = np.empty(n, dtype=np.int64)
    offsets, indices = SK.sparse_topic_labels(
        kernel_seed(seed, Stream.SYNTH_ROWS), n, float(p["mean_labels"] - 1.0), 0.2, topic_cum, topic_start,
        topic_labels, label_cum, topic_of_row)
    if progress is not None:
        progress(0.5)
    topic_emb = rng.standard_normal((T, d)).astype(np.float32)
    label_emb = rng.standard_normal((L, d)).astype(np.float32)
    features = SK.sparse_features(kernel_seed(seed, Stream.SYNTH_FEATURES), offsets, indices, topic_of_row,
                                  topic_emb, label_emb, 1.5, 1.0)
    if progress is not None:
        progress(0.5)
    labels = LabelMatrix._trusted(offsets, indices, L)
    return LongTailData(features, labels, dict(p, seed=seed), None)


#: upper bounds that keep one bad number from asking for unbounded memory or time
_INT_LIMITS = {"n_examples": 100_000_000, "n_labels": 2**31 - 1, "n_features": 1_000_000,
               "n_latent": 100_000, "n_hidden": 100_000, "n_topics": 10_000_000}


def _check_params(preset: str, params: dict[str, Any]) -> None:
    """Validate merged preset parameters (type, range) before any work."""
    kind = params["kind"]
    if kind != PRESETS[preset]["kind"]:
        raise ValueError(f"kind={kind!r} does not fit preset {preset!r} (a "
                         f"{PRESETS[preset]['kind']!r} preset); choose a preset of that kind: "
                         f"{sorted(k for k, v in PRESETS.items() if v['kind'] == kind) or '-'}")
    for key, value in params.items():
        if key == "kind":
            continue
        if key in _INT_LIMITS:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{key} must be an integer, got {value!r}")
            if not 1 <= value <= _INT_LIMITS[key]:
                raise ValueError(f"{key} must be in [1, {_INT_LIMITS[key]:,}], got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(f"{key} must be a number, got {value!r}")
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a finite number > 0, got {value!r}")
    if kind == "dense":
        lo, hi = params["min_prevalence"], params["max_prevalence"]
        if not lo <= hi < 1:
            raise ValueError(f"need 0 < min_prevalence <= max_prevalence < 1, got "
                             f"{lo!r}, {hi!r}")
    if params["mean_labels"] > params["n_labels"]:
        raise ValueError(f"mean_labels={params['mean_labels']!r} exceeds "
                         f"n_labels={params['n_labels']!r}")


def make_long_tail(
    preset: str = "small",
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    **overrides: Any,
) -> LongTailData:
    """Generate a long-tailed multilabel dataset (features + labels), reproducibly.

    Parameters
    ----------
    preset : {"small", "medium", "seed", "sparse", "extreme"}
        ``seed``: 80,000 x 7,900, ~130 labels/example, prevalence 1.1%..15% (most labels
        near 1-2%). ``small``: the same shape scaled to a 2-minute CPU training
        (12,000 x 500, ~8 labels/example); ``medium``: scaled for CPU benchmarks
        (20,000 x 2,000, ~33 labels/example). ``sparse``: 80,000 x 7,900 with ~3 labels/example, Zipf
        popularity. ``extreme``: 3,000,000 x 670,000, ~5 labels/example, most labels with
        fewer than 10 examples.
    seed : int
        Same seed, same data.
    progress : callable, optional
        Called with the fraction of the work finished since the last call.
    **overrides
        Any preset parameter (see :data:`PRESETS`), e.g. ``n_examples=20_000``.

    Returns
    -------
    LongTailData
        ``features`` float32 (n, d), ``labels`` LabelMatrix, ``params``,
        ``target_prevalence`` and ``oracle`` (dense kind; ``None`` for sparse):
        a :class:`DenseOracle` giving the Bayes-optimal ``P(y_c = 1 | x)`` of the
        generative model, whose macro AP is the ceiling to print next to trained models.

    Example
    -------
    >>> d = make_long_tail("small", seed=1, n_examples=500)
    >>> len(d.labels), d.labels.n_labels
    (500, 500)

    The oracle's macro AP is far above that of uninformative scores (the mean prevalence):

    >>> from longtail.metrics import average_precision
    >>> d = make_long_tail("small", seed=0, n_examples=2000)
    >>> ceiling = average_precision(d.labels, d.oracle.predict_proba(d.features))
    >>> bool(ceiling > 3 * d.labels.prevalence().mean())
    True
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    params = dict(PRESETS[preset])
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown parameters for preset {preset!r}: {sorted(unknown)} "
                         f"(known: {sorted(params)})")
    params.update(overrides)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_params(preset, params)
    params["preset"] = preset
    if params["kind"] == "dense":
        return _make_dense(params, int(seed), progress)
    return _make_sparse(params, int(seed), progress)
