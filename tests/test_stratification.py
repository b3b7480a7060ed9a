"""Iterative stratification: exact parity with iterative-stratification, the balanced rule
against a plain-Python reference, groups, second order, the report, the CLI."""
import json

import numpy as np

import longtail
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from longtail import LabelMatrix, iterative_stratification, stratification_report
from longtail._core.rng import derive_seed, rng_below, rng_init, rng_shuffle
from longtail.cli import main
from longtail.datasets import make_long_tail
from longtail.samplers.split import _compat_kernels as C
from longtail.samplers.split import _kernels as K
from longtail.samplers.split import report as R
from longtail.samplers.split import stratification as S

iterstrat = pytest.importorskip("iterstrat.ml_stratifiers")


# ----------------------------------------------------------------------------- data
@st.composite
def dense_labels(draw, max_n=40, max_labels=8):
    n = draw(st.integers(6, max_n))
    L = draw(st.integers(1, max_labels))
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    seed = draw(st.integers(0, 2**31 - 1))
    y = (np.random.default_rng(seed).random((n, L)) < density).astype(np.uint8)
    if y.sum() == 0:
        y[draw(st.integers(0, n - 1)), draw(st.integers(0, L - 1))] = 1
    return y


fractions_st = st.sampled_from([[0.5, 0.5], [1 / 3] * 3, [0.2] * 5, [0.8, 0.2],
                                [0.7, 0.2, 0.1], [0.6, 0.4]])


# ----------------------------------------------------------------------------- compat
@given(y=dense_labels(), fr=fractions_st, seed=st.integers(0, 10_000))
def test_compat_equals_iterstrat(y, fr, seed):
    r = np.asarray(fr)
    theirs = iterstrat.IterativeStratification(y.astype(bool), r.copy(),
                                               np.random.RandomState(seed))
    ours = iterative_stratification(y, fr, method="sechidis", compat="iterstrat", seed=seed,
                                    shuffle=False)
    np.testing.assert_array_equal(ours, theirs)


def test_compat_advances_random_state_like_the_package():
    y = (np.random.default_rng(1).random((50, 6)) < 0.3).astype(bool)
    rs_a, rs_b = np.random.RandomState(3), np.random.RandomState(3)
    for _ in range(3):  # the same shared RandomState, call after call
        theirs = iterstrat.IterativeStratification(y, np.full(3, 1 / 3), rs_a)
        ours = iterative_stratification(y, [1 / 3] * 3, method="sechidis",
                                        compat="iterstrat", seed=rs_b, shuffle=False)
        np.testing.assert_array_equal(ours, theirs)
    assert rs_a.randint(1 << 30) == rs_b.randint(1 << 30)


def test_compat_equals_iterstrat_at_20k_x_2000():
    # the package takes ~10 s here (dense, 2,000 labels); ours a few ms
    y = make_long_tail("seed", seed=0, n_examples=20_000, n_labels=2_000,
                       mean_labels=2_000 * 130 / 7_900).labels
    dense = y.multi_hot_numpy(dtype=np.uint8).astype(bool)
    theirs = iterstrat.IterativeStratification(dense, np.full(5, 0.2), np.random.RandomState(7))
    ours = iterative_stratification(y, [0.2] * 5, method="sechidis", compat="iterstrat",
                                    seed=7, shuffle=False)
    np.testing.assert_array_equal(ours, theirs)


def test_mt19937_replay_matches_randomstate():
    rs = np.random.RandomState(11)
    state = rs.get_state()
    key, pos = np.array(state[1], dtype=np.uint32), np.array([state[2]], dtype=np.int64)
    sizes = [2, 3, 5, 7, 1000, 2**20 + 3] * 300  # crosses the 624-word regeneration
    ours = [C.mt_choice(key, pos, m) for m in sizes]
    assert ours == [rs.choice(m) for m in sizes]


@given(keys=st.lists(st.integers(0, 6), min_size=1, max_size=30), data=st.data())
def test_bucket_queue_pops_lowest_key_last_filed_first(keys, data):
    from longtail.samplers.split._queue import KEY, QUEUE_COLS, queue_new, queue_pop, \
        queue_refile

    q = queue_new(np.array(keys, dtype=np.int64), QUEUE_COLS)
    stamp = {i: i for i, k in enumerate(keys) if k > 0}   # later stamp: first out of a tie
    key, clock = dict(enumerate(keys)), len(keys)
    while stamp:
        want = min(stamp, key=lambda i: (key[i], -stamp[i]))
        assert queue_pop(q) == want
        del stamp[want]
        moved = data.draw(st.lists(st.sampled_from(sorted(stamp)), unique=True)
                          if stamp else st.just([]))
        for i in moved:   # lower (or keep) some keys, then re-file them in that order
            key[i] = max(0, key[i] - data.draw(st.integers(0, 2)))
            q.node[i, KEY] = key[i]
            if key[i] > 0:
                stamp[i], clock = clock, clock + 1
            else:
                del stamp[i]
        queue_refile(q, np.array(moved, dtype=np.int64), len(moved))
    assert queue_pop(q) == -1


# ----------------------------------------------------------------------------- reference
def reference_balanced(rows, n_labels, fractions, seed, shuffle=True, refine=2):
    """Plain-Python version of the default method (greedy, then swap passes)."""
    n, k = len(rows), len(fractions)
    r = np.asarray(fractions, dtype=np.float64)
    r = r / r.sum()
    targets = S.sizes_from_fractions(r, n)
    state = rng_init(np.uint64(derive_seed(seed, 0x5757)))
    units = np.arange(n, dtype=np.int64)
    if shuffle:
        rng_shuffle(state, units)
    cols = [[i for i in range(n) if m in rows[i]] for m in range(n_labels)]
    pos = [len(c) for c in cols]
    got = [[0.0] * k for _ in range(n_labels)]
    inv = [1.0 / c if c > 0 else 0.0 for c in pos]
    inv_r = [1.0 / x if x > 0 else 0.0 for x in r]
    queued = {m: pos[m] for m in range(n_labels) if pos[m] > 0}   # label -> count filed
    stamp = {m: m for m in queued}  # later stamp wins ties (LIFO buckets)
    clock = n_labels
    part = [-1] * n
    size = [0] * k
    while queued:
        active = min(queued, key=lambda m: (queued[m], -stamp[m]))
        del queued[active]
        col = cols[active]
        start = int(rng_below(state, len(col))) if shuffle and len(col) > 1 else 0
        touched = []
        for qq in range(len(col)):
            u = col[(qq + start) % len(col)]
            if part[u] >= 0:
                continue
            eligible = [size[j] + 1 <= targets[j] for j in range(k)]
            if not any(eligible):
                most = max(targets[j] - size[j] for j in range(k))
                eligible = [targets[j] - size[j] == most for j in range(k)]
            # growth of sum_l w_l e_jl^2 / r_j if u joins part j (constant terms dropped)
            fill, own = [0.0] * k, 0.0
            for m in rows[u]:
                f = 1.0 * inv[m]
                if m == active:
                    f *= K.ACTIVE_WEIGHT
                own += f * 1.0
                for j in range(k):
                    fill[j] += got[m][j] * f
            v = [(2.0 * fill[j] + own) * inv_r[j] for j in range(k)]
            best = min(v[j] for j in range(k) if eligible[j])
            cand = [j for j in range(k) if eligible[j] and v[j] == best]
            most = max(targets[j] - size[j] for j in cand)
            ties = [j for j in cand if targets[j] - size[j] == most]
            j = ties[0] if len(ties) == 1 else ties[int(rng_below(state, len(ties)))]
            part[u] = j
            size[j] += 1
            for m in rows[u]:
                got[m][j] += 1.0
                if m not in touched:
                    touched.append(m)
        for m in touched:
            if m == active:
                continue
            g = 0.0
            for j in range(k):
                g += got[m][j]
            new = pos[m] - int(g)
            queued.pop(m, None)
            if new > 0:
                queued[m] = new
                stamp[m] = clock
                clock += 1
    for u in units:
        if part[u] >= 0:
            continue
        most = max(targets[j] - size[j] for j in range(k))
        ties = [j for j in range(k) if targets[j] - size[j] == most]
        j = ties[0] if len(ties) == 1 else ties[int(rng_below(state, len(ties)))]
        part[u] = j
        size[j] += 1
    if refine:
        e = [[got[m][j] - r[j] * float(pos[m]) for j in range(k)] for m in range(n_labels)]
        reference_refine(rows, part, r, e, refine)
    return np.asarray(part)


def reference_refine(rows, part, r, e, passes):
    k = len(r)
    w = [1.0 / x if x > 0 else 0.0 for x in r]

    def smallest(vals, count):
        vals = np.asarray(vals)
        keep = np.arange(vals.size)
        if vals.size > count:
            thr = np.partition(vals.copy(), count - 1)[count - 1]
            keep = np.flatnonzero(vals <= thr)
        return keep[np.argsort(vals[keep], kind="stable")]

    for _ in range(passes):
        sx = []
        for row in rows:
            acc = [0.0] * k
            for m in row:
                for j in range(k):
                    acc[j] += e[m][j]
            sx.append(acc)
        done = 0
        for A in range(k):
            for B in range(A + 1, k):
                if w[A] == 0.0 or w[B] == 0.0:
                    continue
                xa = [i for i in range(len(rows)) if part[i] == A]
                yb = [i for i in range(len(rows)) if part[i] == B]
                if not xa or not yb:
                    continue
                mx = [float(len(rows[i])) * (w[A] + w[B]) - 2.0 * w[A] * sx[i][A]
                      + 2.0 * w[B] * sx[i][B] for i in xa]
                my = [float(len(rows[i])) * (w[A] + w[B]) - 2.0 * w[B] * sx[i][B]
                      + 2.0 * w[A] * sx[i][A] for i in yb]
                ox, oy = smallest(mx, K.WALK), smallest(my, K.WALK)
                fails = 0
                for t in range(min(len(ox), len(oy))):
                    if mx[ox[t]] + my[oy[t]] >= 0.0 or fails >= K.MAX_FAILS:
                        break
                    x, y = xa[ox[t]], yb[oy[t]]
                    d = 0.0
                    for m in rows[x]:
                        if m not in rows[y]:
                            d += w[A] * (1.0 - 2.0 * e[m][A]) + w[B] * (1.0 + 2.0 * e[m][B])
                    for m in rows[y]:
                        if m not in rows[x]:
                            d += w[B] * (1.0 - 2.0 * e[m][B]) + w[A] * (1.0 + 2.0 * e[m][A])
                    if d < -1e-9:
                        for m in rows[x]:
                            e[m][A] -= 1.0
                            e[m][B] += 1.0
                        for m in rows[y]:
                            e[m][B] -= 1.0
                            e[m][A] += 1.0
                        part[x], part[y] = B, A
                        done += 1
                        fails = 0
                    else:
                        fails += 1
        if done == 0:
            break


@given(y=dense_labels(), fr=fractions_st, seed=st.integers(0, 10_000),
       shuffle=st.booleans(), refine=st.sampled_from([0, 1, 3]))
def test_balanced_equals_python_reference(y, fr, seed, shuffle, refine):
    rows = [list(np.flatnonzero(row)) for row in y]
    expected = reference_balanced(rows, y.shape[1], fr, seed, shuffle, refine)
    ours = iterative_stratification(y, fr, seed=seed, shuffle=shuffle, refine=refine)
    np.testing.assert_array_equal(ours, expected)


def test_reference_swaps_do_happen():
    # guard: the refine passes are exercised by the reference comparison
    y = make_long_tail("small", seed=3, n_examples=300, n_labels=40, mean_labels=4.0).labels
    a = iterative_stratification(y, [0.8, 0.2], seed=1, refine=0)
    b = iterative_stratification(y, [0.8, 0.2], seed=1)  # default: 3 passes for 2 parts
    assert (a != b).any()
    assert np.array_equal(np.bincount(a), np.bincount(b))
    rows = [list(y[i]) for i in range(len(y))]
    np.testing.assert_array_equal(b, reference_balanced(rows, y.n_labels, [0.8, 0.2], 1,
                                                        refine=3))


# ----------------------------------------------------------------------------- properties
@given(y=dense_labels(max_n=80), fr=fractions_st, seed=st.integers(0, 1000))
def test_balanced_sizes_within_one(y, fr, seed):
    parts = iterative_stratification(y, fr, seed=seed)
    sizes = np.bincount(parts, minlength=len(fr))
    assert sizes.sum() == len(y)
    assert np.all(np.abs(sizes - np.asarray(fr) * len(y)) < 1.0)


def test_balanced_beats_paper_rule_and_random():
    y = make_long_tail("small", seed=0, n_examples=4_000).labels
    for fr in ([0.2] * 5, [0.8, 0.2]):
        ld = {m: stratification_report(y, iterative_stratification(y, fr, seed=1, method=m),
                                       fractions=fr, max_pairs=50) for m in
              ("balanced", "sechidis")}
        assert ld["balanced"].split.ld < 0.7 * ld["sechidis"].split.ld
        assert ld["balanced"].split.ld < 0.5 * ld["balanced"].random.ld
        assert ld["balanced"].split.ed < 1.0
        assert ld["sechidis"].split.ld < ld["sechidis"].random.ld


def test_seed_changes_and_fixes_the_split():
    y = make_long_tail("small", seed=0, n_examples=1_000).labels
    a = iterative_stratification(y, [0.5, 0.5], seed=1)
    assert np.array_equal(a, iterative_stratification(y, [0.5, 0.5], seed=1))
    assert not np.array_equal(a, iterative_stratification(y, [0.5, 0.5], seed=2))


def test_input_formats_give_the_same_parts():
    y = make_long_tail("small", seed=2, n_examples=300, n_labels=30, mean_labels=3.0).labels
    ref = iterative_stratification(y, [0.6, 0.4], seed=5)
    dense = y.multi_hot_numpy(dtype=np.uint8)
    for form in (dense, sp.csr_matrix(dense), y.to_arrow(), [list(y[i]) for i in range(len(y))]):
        parts = iterative_stratification(form, [0.6, 0.4], seed=5)
        if isinstance(form, list):  # from_lists infers n_labels from the ids present
            assert np.bincount(parts).tolist() == np.bincount(ref).tolist()
        else:
            np.testing.assert_array_equal(parts, ref)


def test_rare_labels_fewer_than_parts_are_allowed():
    y = LabelMatrix.from_lists([[0]] + [[1]] * 9 + [[]] * 10, n_labels=2)
    parts = iterative_stratification(y, [0.2] * 5, seed=0)
    assert np.bincount(parts).tolist() == [4] * 5
    rep = stratification_report(y, parts)
    assert rep.labels_fewer_than_parts == 1 and rep.flz_unavoidable == 4
    assert rep.split.flz >= 4


# ----------------------------------------------------------------------------- groups
def test_groups_never_split():
    y = make_long_tail("small", seed=1, n_examples=2_000).labels
    groups = np.random.default_rng(0).integers(0, 300, size=len(y))
    parts = iterative_stratification(y, [0.7, 0.2, 0.1], seed=3, groups=groups)
    for g in np.unique(groups):
        assert len(np.unique(parts[groups == g])) == 1
    sizes = np.bincount(parts, minlength=3)
    assert np.all(np.abs(sizes - np.array([0.7, 0.2, 0.1]) * len(y)) <= np.bincount(groups).max())
    # string ids work too and give the same split (same sorted group order)
    names = np.array([f"g{g:04d}" for g in groups])
    np.testing.assert_array_equal(
        iterative_stratification(y, [0.7, 0.2, 0.1], seed=3, groups=names), parts)


def test_singleton_groups_equal_plain_examples():
    # the weighted (group) path, with one example per group, is the plain greedy
    y = make_long_tail("small", seed=4, n_examples=500).labels
    plain = iterative_stratification(y, [0.6, 0.4], seed=9, refine=0)
    grouped = iterative_stratification(y, [0.6, 0.4], seed=9, groups=np.arange(len(y)))
    np.testing.assert_array_equal(grouped, plain)


def test_groups_keep_labels_balanced():
    y = make_long_tail("small", seed=5, n_examples=3_000).labels
    groups = np.arange(len(y)) // 3
    parts = iterative_stratification(y, [0.5, 0.5], seed=0, groups=groups)
    rep = stratification_report(y, parts, fractions=[0.5, 0.5], max_pairs=50)
    assert rep.split.ld < 0.6 * rep.random.ld


# ----------------------------------------------------------------------------- order 2
def test_second_order_on_sparse_data():
    y = make_long_tail("sparse", seed=0, n_examples=3_000, n_labels=200).labels
    parts = iterative_stratification(y, [0.8, 0.2], order=2, seed=0)
    assert np.bincount(parts).tolist() == [2400, 600]
    rep2 = stratification_report(y, parts, fractions=[0.8, 0.2])
    assert rep2.pairs.startswith("all")
    assert rep2.split.lpd < rep2.random.lpd


def test_second_order_refused_when_pairs_do_not_fit(monkeypatch):
    y = make_long_tail("small", seed=0, n_examples=500).labels
    monkeypatch.setattr("longtail._core.sampler.available_memory", lambda: 1 << 20)
    with pytest.raises(ValueError, match=r"order=2 needs [\d,]+ label-pair entries"):
        iterative_stratification(y, [0.5, 0.5], order=2)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fractions, match", [
    ([0.5, 0.4], "sum to 1"), ([1.2, -0.2], ">= 0"), ([1.0], "at least 2"),
    ([0.5, float("nan")], "finite"), ("ab", "numbers"),
])
def test_bad_fractions(fractions, match):
    with pytest.raises(ValueError, match=match):
        iterative_stratification([[0], [1], [0, 1]], fractions)


def test_bad_arguments():
    y = [[0], [1], [0, 1], [1]]
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        iterative_stratification(y, [0.5, 0.5], order=3)
    with pytest.raises(ValueError, match="method"):
        iterative_stratification(y, [0.5, 0.5], method="random")
    with pytest.raises(ValueError, match="method='sechidis'"):
        iterative_stratification(y, [0.5, 0.5], compat="iterstrat")
    with pytest.raises(ValueError, match="no labels at all"):
        iterative_stratification([[], []], [0.5, 0.5])
    with pytest.raises(ValueError, match="no labels at all"):
        iterative_stratification(np.zeros((4, 3)), [0.5, 0.5])
    with pytest.raises(ValueError, match="more than the number of examples"):
        iterative_stratification(y, [0.2] * 5)
    with pytest.raises(ValueError, match="groups must be 1-D"):
        iterative_stratification(y, [0.5, 0.5], groups=[0, 1])
    with pytest.raises(ValueError, match="1 groups cannot fill 2 parts"):
        iterative_stratification(y, [0.5, 0.5], groups=[7, 7, 7, 7])
    with pytest.raises(ValueError, match="example 3 has no group"):
        iterative_stratification(y, [0.5, 0.5], groups=np.array(["a", "b", "a", None]))
    late = np.array(["a"] * 1_000_001 + [None], dtype=object)   # past any scan limit
    with pytest.raises(ValueError, match="example 1000001 has no group"):
        S._group_index(late, late.size)
    with pytest.raises(ValueError, match="seed"):
        iterative_stratification(y, [0.5, 0.5], seed=-1)
    with pytest.raises(ValueError, match="refine"):
        iterative_stratification(y, [0.5, 0.5], refine=-1)


# ----------------------------------------------------------------------------- report
def test_report_measures_by_hand():
    # label 0: 2 of 4 examples; label 1: 1 of 4; parts {0, 1} and {2, 3}
    y = LabelMatrix.from_lists([[0], [0, 1], [], []], n_labels=2)
    rep = stratification_report(y, [0, 0, 1, 1], n_parts=2)
    # label 0: part ratios 2/0 (no negatives: left out of LD); label 1: |1/1 - 1/3| and
    # |0/2 - 1/3| -> mean 0.5
    assert rep.ld_labels_skipped == 1
    assert rep.split.ld == pytest.approx(0.5)
    assert rep.split.ed == 0.0
    assert rep.split.flz == 2 and rep.split.fz == 1   # part 1 lacks both labels
    assert rep.labels_fewer_than_parts == 1 and rep.flz_unavoidable == 1
    assert rep.n_pairs == 1 and rep.split.flzp == 1   # pair (0, 1) only in part 0
    rep = stratification_report(y, [0, 1, 0, 1], fractions=[0.75, 0.25])
    assert rep.split.ed == pytest.approx(1.0)         # sizes 2, 2 against 3, 1
    d = rep.to_dict()
    json.dumps(d)
    assert set(d["split"]) == {"ld", "ed", "fz", "flz", "lpd", "flzp"}
    text = str(rep)
    assert "LD" in text and "random split" in text


def test_report_random_reference_and_sampled_pairs():
    y = make_long_tail("small", seed=0, n_examples=2_000).labels
    parts = iterative_stratification(y, [0.2] * 5, seed=0)
    rep = stratification_report(y, parts, max_pairs=300, max_pair_occurrences=1_000)
    assert rep.sizes == (400,) * 5 and rep.random.ed == rep.split.ed
    assert rep.split.ld < rep.random.ld and rep.split.flz <= rep.random.flz
    assert "sample" in rep.pairs and 0 < rep.n_pairs <= 300
    with pytest.raises(ValueError, match="shape"):
        stratification_report(y, parts[:-1])
    with pytest.raises(ValueError, match="part id 4"):
        stratification_report(y, parts, n_parts=4)


def test_report_sparse_cells_path_gives_the_same_measures(monkeypatch):
    y = make_long_tail("small", seed=1, n_examples=1_500).labels
    parts = np.random.default_rng(0).integers(0, 40, size=len(y))
    parts[:3] = 39  # part 39 small enough to miss labels; part 0 non-empty
    dense = stratification_report(y, parts, n_parts=41, max_pairs=50)  # part 40 empty
    monkeypatch.setattr(R, "_DENSE_CELLS", 0)
    sparse = stratification_report(y, parts, n_parts=41, max_pairs=50)
    for a, b in ((dense.split, sparse.split), (dense.random, sparse.random)):
        assert a.ld == pytest.approx(b.ld, rel=1e-12)
        assert (a.fz, a.flz) == (b.fz, b.flz)
    assert dense.ld_labels_skipped == sparse.ld_labels_skipped


def test_report_frequency_weighted_pairs_on_very_sparse_data():
    y = make_long_tail("sparse", seed=0, n_examples=2_000, n_labels=3_000).labels
    parts = iterative_stratification(y, [0.5, 0.5], seed=0)
    rep = stratification_report(y, parts, max_pairs=200, max_pair_occurrences=10)
    assert rep.pairs.startswith("frequency-weighted") and rep.n_pairs > 0


# ----------------------------------------------------------------------------- CLI
def _write(tmp_path, n=600):
    data = make_long_tail("small", seed=0, n_examples=n)
    path = tmp_path / "d.arrow"
    data.save(str(path))
    return path, data.labels


def test_cli_split_fractions_and_folds(tmp_path, capsys):
    path, y = _write(tmp_path)
    out = tmp_path / "split.parquet"
    assert main(["split", str(path), "--fractions", "0.8,0.1,0.1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LD" in text and "wrote" in text
    split = longtail.load_split(out, labels=y)  # named parts + what made them
    assign = iterative_stratification(y, [0.8, 0.1, 0.1], seed=0)
    assert list(split) == ["train", "val", "test"]
    for k, name in enumerate(split):
        np.testing.assert_array_equal(split[name], np.flatnonzero(assign == k))
    assert split.fractions == {"train": 0.8, "val": 0.1, "test": 0.1} and split.seed == 0
    folds = tmp_path / "folds.parquet"
    assert main(["split", str(path), "--folds", "5", "--seed", "3", "-o", str(folds),
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["split"]["ed"] == 0.0
    split = longtail.load_split(folds, labels=y)
    assert [len(v) for v in split.values()] == [120] * 5


def test_cli_split_bad_input_writes_nothing(tmp_path, capsys):
    path, _ = _write(tmp_path, n=200)
    out = tmp_path / "s.parquet"
    for args, msg in [
        (["--fractions", "0.8,0.1"], "sum to 1"),
        (["--fractions", "0.8,abc,0.2"], "fractions"),
        (["--folds", "1"], "folds"),
        (["--folds", "500"], "more than the number"),
        ([], "one of --fractions or --folds"),
        (["--fractions", "0.5,0.5", "--folds", "2"], "not both"),
        (["--folds", "2", "--order", "3"], "order"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["split", str(path), "-o", str(out)] + args)
        assert e.value.code == 2
        assert msg in capsys.readouterr().err
        assert not out.exists()
    with pytest.raises(SystemExit):
        main(["split", str(tmp_path / "missing.arrow"), "--folds", "2", "-o", str(out)])
    assert "no such file" in capsys.readouterr().err and not out.exists()
    assert main(["split", str(path), "--folds", "2", "-o", str(out)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):  # no overwrite without --force
        main(["split", str(path), "--folds", "2", "-o", str(out)])
    assert "--force" in capsys.readouterr().err
    assert main(["split", str(path), "--folds", "2", "-o", str(out), "--force"]) == 0


def test_cli_split_groups_column(tmp_path, capsys):
    y = make_long_tail("small", seed=0, n_examples=300).labels
    groups = np.arange(300) // 4
    table = pa.table({"labels": y.to_arrow(), "patient": groups})
    path = tmp_path / "g.parquet"
    pq.write_table(table, path)
    out = tmp_path / "s.parquet"
    assert main(["split", str(path), "--fractions", "0.5,0.5", "--groups", "patient",
                 "-o", str(out)]) == 0
    parts = pq.read_table(out).column("part").to_numpy()
    for g in np.unique(groups):
        assert len(np.unique(parts[groups == g])) == 1
    with pytest.raises(SystemExit):
        main(["split", str(path), "--fractions", "0.5,0.5", "--groups", "nope",
              "-o", str(tmp_path / "x.parquet")])
    assert "no column 'nope'" in capsys.readouterr().err
