"""Splits as files (issue 15 #9): save_split / load_split and the CLI writing that format."""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import longtail
from longtail import LabelMatrix, Split, load_split, save_split, stratified_split
from longtail.cli import main
from longtail.datasets import write_dataset


def _labels(n=40):
    return LabelMatrix.from_lists([[i % 5, 5 + i % 3] for i in range(n)], n_labels=8)


def _leftovers(directory):
    return [f for f in os.listdir(directory) if f.endswith(".tmp")]


# ---------------------------------------------------------------------------- round trip
@given(n=st.integers(0, 60), k=st.integers(1, 5), seed=st.integers(0, 2**31),
       covered=st.floats(0.0, 1.0))
def test_round_trip_matches_a_plain_numpy_reference(tmp_path_factory, n, k, seed, covered):
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, k, n)
    owner[rng.random(n) > covered] = -1            # some examples in no part
    names = [f"p{j}" for j in range(k)]
    # each part given unsorted, as any index array
    parts = {names[j]: rng.permutation(np.flatnonzero(owner == j)) for j in range(k)}
    fractions = list(rng.dirichlet(np.ones(k)))
    path = tmp_path_factory.mktemp("rt") / "s.parquet"
    save_split(path, parts, fractions=fractions, seed=seed, method="test", n_examples=n)
    got = load_split(path)
    assert list(got) == names and got.n_examples == n and got.seed == seed
    assert got.method == "test" and got.fingerprint is None and got.path == str(path)
    assert got.fractions == dict(zip(names, map(float, fractions)))
    for j, name in enumerate(names):                # brute force: a scan per part
        want = np.array([i for i in range(n) if owner[i] == j], dtype=np.int64)
        assert got[name].dtype == np.int64 and np.array_equal(got[name], want)
        assert not got[name].flags.writeable
    assert np.array_equal(got.assignment(), owner)
    # the file itself: one sorted row per assigned example, part as names
    t = pq.read_table(path)
    assert t.column_names == ["index", "part"]
    assert t.column("index").to_pylist() == [i for i in range(n) if owner[i] >= 0]
    assert t.column("part").to_pylist() == [names[owner[i]] for i in range(n) if owner[i] >= 0]


def test_split_of_stratified_split_with_labels_and_pandas(tmp_path):
    y = longtail.make_long_tail("small", seed=0, n_examples=500).labels
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    parts = stratified_split(y, fractions, seed=7)
    path = tmp_path / "split.parquet"
    save_split(path, parts, labels=y, fractions=fractions, seed=7, method="balanced")
    s = load_split(path, labels=y)
    assert s.sizes() == {"train": 400, "val": 50, "test": 50}
    assert all(np.array_equal(s[k], parts[k]) for k in fractions)
    assert s.fractions == fractions and s.method == "balanced" and s.n_labels == 500
    meta = json.loads(pq.read_schema(path).metadata[b"longtail.split"])
    assert meta["parts"] == ["train", "val", "test"] and meta["n_examples"] == 500
    assert pa.types.is_dictionary(pq.read_schema(path).field("part").type)
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(path)
    assert df.groupby("part", observed=True).size().to_dict() == s.sizes()
    # a Split saved again keeps what it records
    again = tmp_path / "again.parquet"
    save_split(again, s)
    s2 = load_split(again, labels=y)
    assert (s2.seed, s2.method, s2.fractions, s2.fingerprint) == \
        (7, "balanced", fractions, s.fingerprint)


def test_empty_parts_and_int_names_survive(tmp_path):
    path = tmp_path / "s.parquet"
    save_split(path, {0: [1, 0], 1: [], 2: [3]}, n_examples=5)
    s = load_split(path)
    assert list(s) == ["0", "1", "2"] and s.sizes() == {"0": 2, "1": 0, "2": 1}
    assert s.n_examples == 5 and s.assignment().tolist() == [0, 0, -1, 2, -1]
    save_split(tmp_path / "l.parquet", [[0], [1, 2]])       # a list of index arrays
    assert load_split(tmp_path / "l.parquet").sizes() == {"0": 1, "1": 2}


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("parts, kwargs, error, match", [
    ({"a": [0, 1], "b": [1, 2]}, {}, ValueError, "'a' and 'b' both hold example 1"),
    ({"a": [0, -1]}, {}, ValueError, "index -1 is negative"),
    ({"a": [0, 5]}, {"n_examples": 5}, ValueError, "index 5, beyond n_examples=5"),
    ({"a": [0, 0]}, {}, ValueError, "holds index 0 twice"),
    ({"a": [0.0, 1.0]}, {}, TypeError, "must be integers"),
    ({"a": [[0, 1]]}, {}, ValueError, "1-D"),
    ({}, {}, ValueError, "at least one part"),
    ({"a": [0], 1.5: [1]}, {}, TypeError, "str or int"),
    ({"1": [0], 1: [1]}, {}, ValueError, "two parts are named '1'"),
    ({"a": [0], "b": [1]}, {"fractions": [1.0]}, ValueError, "one number per part"),
    ({"a": [0], "b": [1]}, {"fractions": {"a": 1.0, "c": 0}}, ValueError, "name the parts"),
    ({"a": [0], "b": [1]}, {"fractions": [0.5, -0.5]}, ValueError, "finite and >= 0"),
    ({"a": [0]}, {"seed": 1.5}, TypeError, "seed"),
    ({"a": [0]}, {"method": 3}, TypeError, "method"),
    ({"a": [0]}, {"overwrite": "yes"}, TypeError, "overwrite"),
    ("abc", {}, TypeError, "mapping part name"),
    ({"a": [0, 39]}, {"labels": _labels(), "n_examples": 50}, ValueError, "40 rows"),
])
def test_bad_parts_are_refused_before_any_file_exists(tmp_path, parts, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_split(tmp_path / "s.parquet", parts, **kwargs)
    assert os.listdir(tmp_path) == []


def test_no_overwrite_unless_asked_and_atomic(tmp_path):
    path = tmp_path / "s.parquet"
    save_split(path, {"a": [0, 1]})
    before = open(path, "rb").read()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_split(path, {"a": [0]})
    with pytest.raises(ValueError, match="both hold"):
        save_split(path, {"a": [0], "b": [0]}, overwrite=True)
    assert open(path, "rb").read() == before and _leftovers(tmp_path) == []
    save_split(path, {"b": [2]}, overwrite=True)
    assert load_split(path).sizes() == {"b": 1}


def test_load_checks_the_labels_and_names_the_file(tmp_path):
    y = _labels()
    path = tmp_path / "s.parquet"
    save_split(path, stratified_split(y, {"train": 0.5, "test": 0.5}), labels=y)
    assert load_split(path, labels=y.take(np.arange(40))).n_examples == 40
    with pytest.raises(ValueError, match=r"s\.parquet.*40 examples.*39"):
        load_split(path, labels=y.take(np.arange(39)))
    other = LabelMatrix.from_lists([[i % 5, 5 + i % 2] for i in range(40)], n_labels=8)
    with pytest.raises(ValueError, match=r"s\.parquet.* was made from other labels"):
        load_split(path, labels=other)
    wider = LabelMatrix.from_lists([[i % 5, 5 + i % 3] for i in range(40)], n_labels=9)
    with pytest.raises(ValueError, match="8 labels then, 9 now"):
        load_split(path, labels=wider)
    # without a recorded fingerprint only the size is checked
    save_split(tmp_path / "n.parquet", {"a": np.arange(40)})
    assert load_split(tmp_path / "n.parquet", labels=other).n_examples == 40
    with pytest.raises(ValueError, match="n.parquet"):
        load_split(tmp_path / "n.parquet", labels=y.take(np.arange(10)))


def test_other_files_are_refused_with_their_name(tmp_path):
    bad = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), bad)
    with pytest.raises(ValueError, match=r"x\.parquet.*no column 'index'"):
        load_split(bad)
    (tmp_path / "t.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"t\.parquet.*not a split file"):
        load_split(tmp_path / "t.parquet")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_split(tmp_path / "nope.parquet")
    meta = {b"longtail.split": json.dumps({"format": "longtail.split", "version": 99})}
    pq.write_table(pa.table({"index": [0]}).replace_schema_metadata(meta),
                   tmp_path / "v.parquet")
    with pytest.raises(ValueError, match="version 99"):
        load_split(tmp_path / "v.parquet")


def test_files_of_the_old_cli_are_read(tmp_path):
    for column in ("part", "fold"):
        path = tmp_path / f"{column}.parquet"
        pq.write_table(pa.table({"index": pa.array(np.arange(5), pa.int64()),
                                 column: pa.array([1, 0, 1, 1, 0], pa.int32())}), path)
        s = load_split(path)
        assert list(s) == ["0", "1"] and s["1"].tolist() == [0, 2, 3]
        assert s.n_examples == 5 and s.seed is None and s.fractions is None


def test_split_mapping_interface():
    s = Split({"a": np.array([3, 1])}, n_examples=4, seed=2, method="m")
    assert dict(s.items())["a"].tolist() == [1, 3] and len(s) == 1 and "a" in s
    with pytest.raises(KeyError, match=r"no part 'b'.*\['a'\]"):
        s["b"]
    assert "n_examples=4" in repr(s) and "'a': 2" in repr(s)


# ---------------------------------------------------------------------------- CLI
@pytest.fixture
def data(tmp_path):
    feats = np.zeros((40, 2), dtype=np.float32)
    write_dataset(tmp_path / "data.arrow", feats, _labels().to_arrow().to_pylist(),
                  n_labels=8)
    return tmp_path


@pytest.mark.parametrize("argv, names, fractions", [
    (["--fractions", "0.5,0.25,0.25"], ["train", "val", "test"], [0.5, 0.25, 0.25]),
    (["--fractions", "0.5,0.5"], ["train", "test"], [0.5, 0.5]),
    (["--fractions", "0.25,0.25,0.25,0.25"], ["part0", "part1", "part2", "part3"],
     [0.25] * 4),
    (["--fractions", "0.75,0.25", "--names", "fit, holdout"], ["fit", "holdout"],
     [0.75, 0.25]),
    (["--folds", "4"], ["fold0", "fold1", "fold2", "fold3"], [0.25] * 4),
])
def test_cli_writes_the_split_file_format(data, capsys, argv, names, fractions):
    out = data / "s.parquet"
    assert main(["split", str(data / "data.arrow"), *argv, "--seed", "3", "--method",
                 "sechidis", "-o", str(out)]) == 0
    assert "part name per index" in capsys.readouterr().out
    s = load_split(out, labels=_labels())
    assert list(s) == names and s.fractions == dict(zip(names, fractions))
    assert (s.seed, s.method, s.n_examples) == (3, "sechidis", 40)
    assert sum(s.sizes().values()) == 40
    # the same parts as the library's split
    from longtail import iterative_stratification
    want = iterative_stratification(_labels(), fractions, seed=3, method="sechidis")
    assert np.array_equal(s.assignment(), want)


@pytest.mark.parametrize("names, match", [
    ("a,b,c", "3 names"), ("a,", "name 1 is empty"), ("a,a", "'a' is given twice")])
def test_cli_bad_names(data, capsys, names, match):
    out = data / "s.parquet"
    with pytest.raises(SystemExit) as e:
        main(["split", str(data / "data.arrow"), "--fractions", "0.5,0.5", "--names",
              names, "-o", str(out)])
    assert e.value.code == 2 and match in capsys.readouterr().err
    assert not out.exists()
