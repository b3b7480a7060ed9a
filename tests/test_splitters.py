"""scikit-learn protocol splitters: parity with iterative-stratification, formats, groups."""
import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from longtail import LabelMatrix
from longtail.datasets import make_long_tail
from longtail.samplers import (
    MultilabelStratifiedKFold,
    MultilabelStratifiedShuffleSplit,
    RepeatedMultilabelStratifiedKFold,
    multilabel_train_test_split,
    stratified_split,
)

pkg = pytest.importorskip("iterstrat.ml_stratifiers")


@st.composite
def indicator(draw, max_n=40, max_labels=8):
    n = draw(st.integers(6, max_n))
    L = draw(st.integers(2, max_labels))
    seed = draw(st.integers(0, 2**31 - 1))
    y = (np.random.default_rng(seed).random((n, L)) < draw(st.sampled_from([0.1, 0.4]))
         ).astype(np.uint8)
    y[0, 0] = y[1, 1] = 1  # the package insists on a multilabel-indicator target
    y[2, :2] = 0
    return y


def _splits(cv, X, y, groups=None):
    return [(tr.copy(), te.copy()) for tr, te in cv.split(X, y, groups)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for (tr_a, te_a), (tr_b, te_b) in zip(a, b):
        np.testing.assert_array_equal(tr_a, tr_b)
        np.testing.assert_array_equal(te_a, te_b)


# ----------------------------------------------------------------------------- parity
@given(y=indicator(), k=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_kfold_compat_equals_package(y, k, seed):
    X = np.zeros((len(y), 1))
    theirs = _splits(pkg.MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed),
                     X, y)
    ours = _splits(MultilabelStratifiedKFold(k, shuffle=True, random_state=seed,
                                             method="sechidis", compat="iterstrat"), X, y)
    _assert_same(ours, theirs)


@given(y=indicator(), seed=st.integers(0, 10_000),
       test_size=st.sampled_from([0.2, 0.25, 0.5, 3]))
def test_shuffle_split_compat_equals_package(y, seed, test_size):
    X = np.zeros((len(y), 1))
    theirs = _splits(pkg.MultilabelStratifiedShuffleSplit(n_splits=3, test_size=test_size,
                                                           random_state=seed), X, y)
    ours = _splits(MultilabelStratifiedShuffleSplit(3, test_size=test_size, random_state=seed,
                                                    method="sechidis", compat="iterstrat"),
                   X, y)
    _assert_same(ours, theirs)


def test_repeated_compat_equals_package_and_shared_state():
    y = (np.random.default_rng(0).random((60, 7)) < 0.3).astype(np.uint8)
    X = np.zeros((60, 1))
    theirs = _splits(pkg.RepeatedMultilabelStratifiedKFold(n_splits=3, n_repeats=3,
                                                            random_state=4), X, y)
    ours = _splits(RepeatedMultilabelStratifiedKFold(3, 3, random_state=4, method="sechidis",
                                                     compat="iterstrat"), X, y)
    _assert_same(ours, theirs)
    # a shared RandomState is advanced exactly as the package advances it
    rs_a, rs_b = np.random.RandomState(9), np.random.RandomState(9)
    _assert_same(_splits(MultilabelStratifiedKFold(3, random_state=rs_b, method="sechidis",
                                                   compat="iterstrat"), X, y),
                 _splits(pkg.MultilabelStratifiedKFold(3, shuffle=True, random_state=rs_a),
                         X, y))
    assert rs_a.randint(1 << 30) == rs_b.randint(1 << 30)


def test_kfold_compat_equals_package_on_sparse_input_at_scale():
    y = make_long_tail("small", seed=0, n_examples=4_000).labels
    dense = y.multi_hot_numpy(dtype=np.uint8)
    theirs = _splits(pkg.MultilabelStratifiedKFold(5, shuffle=True, random_state=0),
                     np.zeros(len(y)), dense)
    ours = _splits(MultilabelStratifiedKFold(5, random_state=0, method="sechidis",
                                             compat="iterstrat"), None, y.to_scipy())
    _assert_same(ours, theirs)


# ----------------------------------------------------------------------------- default
def test_kfold_partitions_exactly():
    y = make_long_tail("small", seed=1, n_examples=1_003).labels
    cv = MultilabelStratifiedKFold(5, random_state=0)
    splits = _splits(cv, None, y)
    assert cv.get_n_splits() == 5 and len(splits) == 5
    tests = [te for _, te in splits]
    assert sorted(len(t) for t in tests) == [200, 200, 201, 201, 201]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(len(y)))
    for tr, te in splits:
        assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == len(y)
    _assert_same(splits, _splits(cv, None, y))  # int random_state: reproducible


def test_random_state_without_shuffle_and_none():
    y = make_long_tail("small", seed=2, n_examples=500).labels
    a = _splits(MultilabelStratifiedKFold(3, shuffle=False, random_state=1), None, y)
    b = _splits(MultilabelStratifiedKFold(3, shuffle=False, random_state=2), None, y)
    assert any(not np.array_equal(x[1], z[1]) for x, z in zip(a, b))
    _assert_same(a, _splits(MultilabelStratifiedKFold(3, shuffle=False, random_state=1),
                            None, y))
    np.random.seed(5)
    c = _splits(MultilabelStratifiedKFold(3), None, y)
    np.random.seed(5)
    _assert_same(c, _splits(MultilabelStratifiedKFold(3), None, y))


def test_y_formats_give_the_same_folds():
    y = make_long_tail("small", seed=3, n_examples=400, n_labels=50, mean_labels=4.0).labels
    dense = y.multi_hot_numpy(dtype=np.uint8)
    cv = MultilabelStratifiedKFold(4, random_state=3)
    ref = _splits(cv, None, y)
    import torch

    for form in (dense, dense.astype(bool), sp.csr_matrix(dense), sp.csc_matrix(dense),
                 y.to_arrow(), dense.tolist(), torch.from_numpy(dense)):
        _assert_same(_splits(cv, np.zeros(len(y)), form), ref)


def test_y_as_dataframe():
    pd = pytest.importorskip("pandas")
    y = make_long_tail("small", seed=3, n_examples=200, n_labels=30, mean_labels=3.0).labels
    dense = y.multi_hot_numpy(dtype=np.uint8)
    cv = MultilabelStratifiedKFold(4, random_state=3)
    _assert_same(_splits(cv, None, pd.DataFrame(dense)), _splits(cv, None, y))


def test_groups_are_honoured():
    y = make_long_tail("small", seed=4, n_examples=900).labels
    groups = np.arange(len(y)) // 5
    for cv in (MultilabelStratifiedKFold(3, random_state=0),
               MultilabelStratifiedShuffleSplit(2, test_size=0.3, random_state=0),
               RepeatedMultilabelStratifiedKFold(3, n_repeats=2, random_state=0)):
        for tr, te in cv.split(None, y, groups):
            assert np.intersect1d(groups[tr], groups[te]).size == 0
    with pytest.raises(ValueError, match="groups"):
        next(MultilabelStratifiedKFold(3, method="sechidis", compat="iterstrat")
             .split(None, y, groups))
    with pytest.raises(ValueError, match="more than the number of groups"):
        next(MultilabelStratifiedKFold(3).split(None, y, np.arange(len(y)) % 2))


def test_shuffle_split_honours_train_size():
    y = make_long_tail("small", seed=5, n_examples=1_000).labels
    cv = MultilabelStratifiedShuffleSplit(3, test_size=0.2, train_size=0.5, random_state=1)
    seen = []
    for tr, te in cv.split(None, y):
        assert len(tr) == 500 and len(te) == 200
        assert np.intersect1d(tr, te).size == 0
        seen.append(te)
    assert not np.array_equal(seen[0], seen[1])
    tr, te = next(MultilabelStratifiedShuffleSplit(1, test_size=150, random_state=0)
                  .split(None, y))
    assert (len(tr), len(te)) == (850, 150)
    tr, te = next(MultilabelStratifiedShuffleSplit(1, random_state=0).split(None, y))
    assert (len(tr), len(te)) == (900, 100)  # default test_size 0.1


def test_cross_val_score_and_grid_search():
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    data = make_long_tail("small", seed=0, n_examples=600, n_labels=20, mean_labels=2.0)
    X, Y = data.features, data.labels.multi_hot_numpy(dtype=np.int64)
    scores = cross_val_score(KNeighborsClassifier(5), X, Y,
                             cv=MultilabelStratifiedKFold(3, random_state=0))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    gs = GridSearchCV(KNeighborsClassifier(), {"n_neighbors": [3, 5]},
                      cv=MultilabelStratifiedShuffleSplit(2, test_size=0.25, random_state=0))
    gs.fit(X, Y)
    assert gs.best_params_["n_neighbors"] in (3, 5)
    assert "MultilabelStratifiedKFold(" in repr(MultilabelStratifiedKFold())


# ----------------------------------------------------------------------------- one-call
def test_multilabel_train_test_split_array_types():
    import torch

    data = make_long_tail("small", seed=6, n_examples=300)
    X, y = data.features, data.labels
    Xtr, Xte, ytr, yte, ttr, tte, ltr, lte = multilabel_train_test_split(
        X, y, torch.from_numpy(X), list(range(300)), labels=y, test_size=0.2, random_state=0)
    assert Xtr.shape == (240, X.shape[1]) and Xte.shape == (60, X.shape[1])
    assert isinstance(ytr, LabelMatrix) and len(yte) == 60
    assert torch.equal(tte, torch.from_numpy(Xte))
    tr, te = multilabel_train_test_split(labels=y, test_size=0.2, random_state=0)
    np.testing.assert_array_equal(Xte, X[te])
    assert lte == te.tolist()
    arr = pa.array(np.arange(300))
    a_tr, a_te = multilabel_train_test_split(arr, labels=y, test_size=0.2, random_state=0)
    assert a_te.to_pylist() == te.tolist()
    tr2, te2 = multilabel_train_test_split(labels=y, test_size=0.2, random_state=0,
                                           shuffle=False)
    assert len(te2) == 60 and np.intersect1d(tr2, te2).size == 0
    with pytest.raises(ValueError, match="array 0 has 10 samples"):
        multilabel_train_test_split(X[:10], labels=y)


def test_stratified_split_dict():
    y = make_long_tail("small", seed=7, n_examples=1_000).labels
    parts = stratified_split(y, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    assert list(parts) == ["train", "val", "test"]
    assert [len(v) for v in parts.values()] == [800, 100, 100]
    np.testing.assert_array_equal(np.sort(np.concatenate(list(parts.values()))),
                                  np.arange(1_000))
    assert list(stratified_split(y, [0.5, 0.5])) == [0, 1]


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs():
    y = np.eye(3, dtype=int)[np.arange(12) % 3]
    with pytest.raises(ValueError, match="n_splits"):
        MultilabelStratifiedKFold(1)
    with pytest.raises(ValueError, match="n_splits=20 is more than the number of examples"):
        next(MultilabelStratifiedKFold(20).split(None, y))
    with pytest.raises(ValueError, match="order"):
        MultilabelStratifiedKFold(3, order=3)
    with pytest.raises(ValueError, match="X has 5 samples"):
        next(MultilabelStratifiedKFold(3).split(np.zeros(5), y))
    with pytest.raises(ValueError, match="no labels at all"):
        next(MultilabelStratifiedKFold(3).split(None, np.zeros((12, 3))))
    for test_size, train_size, match in [(0.0, None, r"\(0, 1\)"), (1.5, None, r"\(0, 1\)"),
                                         (12, None, r"\[1, 12\)"), (40, None, r"\[1, 12\)"),
                                         (0.5, 0.8, "more than the 12 samples")]:
        with pytest.raises(ValueError, match=match):
            next(MultilabelStratifiedShuffleSplit(1, test_size=test_size,
                                                  train_size=train_size).split(None, y))
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(y, {"a": 0.5, "b": 0.6})
    with pytest.raises(TypeError, match="random_state"):
        next(MultilabelStratifiedKFold(3, random_state="x").split(None, y))
    with pytest.raises(ValueError, match="lists='dense'"):   # Python lists are 0/1 rows
        next(MultilabelStratifiedKFold(2).split(None, [[1, 0], [1]] * 3))


def test_one_seed_policy():
    from longtail._core.rng import seed_from

    y = make_long_tail("small", seed=8, n_examples=300).labels
    # a RandomState or Generator stands for one draw from it, an int for itself
    for state in (np.random.RandomState(4), np.random.default_rng(4)):
        twin = type(state)(4) if isinstance(state, np.random.RandomState) \
            else np.random.default_rng(4)
        _assert_same(_splits(MultilabelStratifiedKFold(3, random_state=state), None, y),
                     _splits(MultilabelStratifiedKFold(3, random_state=seed_from(twin)),
                             None, y))
    with pytest.raises(ValueError, match="random_state must be a non-negative"):
        MultilabelStratifiedKFold(3, random_state=-1)
    with pytest.raises(TypeError, match="Generator cannot replay"):
        next(MultilabelStratifiedKFold(3, random_state=np.random.default_rng(0),
                                       method="sechidis", compat="iterstrat").split(None, y))
