"""Hostile use of the ``longtail`` CLI and of the atomic writers (issue 11: #5, #7, #9,
#10, #11): every refusal is one line, exit status 2, no traceback, nothing written and
the inputs untouched."""
import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longtail.cli import main
from longtail.datasets import io as lio
from longtail.datasets import write_dataset
from longtail.datasets.io import atomic_output, check_output_file, write_table


# ---------------------------------------------------------------------------- helpers
def _labels(n=40):
    return [[i % 5, 5 + i % 3] for i in range(n)]


@pytest.fixture
def data(tmp_path):
    """A tiny dataset as Arrow IPC (data.arrow) and Parquet (data.parquet, with groups)."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 3)).astype(np.float32)
    arrow = tmp_path / "data.arrow"
    write_dataset(arrow, feats, _labels(), n_labels=8)
    table = pa.ipc.open_file(str(arrow)).read_all()
    table = table.append_column("group", pa.array([f"g{i // 2}" for i in range(40)]))
    parquet = tmp_path / "data.parquet"
    pq.write_table(table, parquet)
    return tmp_path


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _snapshot(directory):
    """{name: digest} of the files of ``directory`` (symlinks by target, dirs by None)."""
    out = {}
    for name in sorted(os.listdir(directory)):
        p = os.path.join(directory, name)
        if os.path.isdir(p) or not os.path.isfile(p):
            out[name] = None
        else:
            out[name] = _digest(p)
    return out


def _refused(capsys, argv, *, code=2):
    """Run the CLI expecting a one-line refusal; return the message."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == code, err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith(f"longtail {argv[0]}: error: "), err
    return err


def _no_work(monkeypatch):
    """Make any attempt to read labels fail loudly: the refusal must come first."""
    from longtail.datasets.label_matrix import LabelMatrix

    def boom(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(LabelMatrix, "open", boom)
    monkeypatch.setattr(LabelMatrix, "read_parquet", boom)


# every command that writes, with its output and the input it reads
def _commands(d, out, force=True):
    f = ["--force"] if force else []
    return {
        "split": ["split", d / "data.parquet", "--folds", "2", "-o", out, *f],
        "convert": ["convert", d / "data.parquet", out, *f],
        "weights": ["weights", d / "data.parquet", "--method", "inverse_frequency",
                    "-o", out, *f],
        "stats": ["stats", d / "data.parquet", "--plot", out, *f],
    }


# ---------------------------------------------------------------------------- #5 data loss
@pytest.mark.parametrize("command", ["split", "convert", "weights", "stats"])
@pytest.mark.parametrize("alias", ["same", "relative", "symlink", "hardlink"])
def test_output_is_input_refused_before_work(data, capsys, monkeypatch, command, alias):
    src = data / "data.parquet"
    if alias == "same":
        out = str(src)
    elif alias == "relative":
        monkeypatch.chdir(data)
        out = os.path.join("..", data.name, "data.parquet")
    elif alias == "symlink":
        out = str(data / "link.parquet")
        os.symlink(src, out)
    else:
        out = str(data / "hard.parquet")
        os.link(src, out)
    before = _snapshot(data)
    _no_work(monkeypatch)
    err = _refused(capsys, _commands(data, out)[command])
    assert "is the input file" in err and repr(out) in err
    assert _snapshot(data) == before


def test_split_onto_its_own_input_keeps_the_dataset(data, capsys):
    # the reported case: `split data.arrow ... -o data.arrow --force` replaced the dataset
    src = data / "data.parquet"
    digest = _digest(src)
    _refused(capsys, ["split", src, "--fractions", "0.5,0.5", "-o", src, "--force"])
    assert _digest(src) == digest
    assert pq.read_table(src).num_rows == 40


def test_library_writers_refuse_their_inputs(data):
    src = data / "data.arrow"
    link = data / "link.arrow"
    os.symlink(src, link)
    digest = _digest(src)
    table = pa.table({"x": [1, 2]})
    with pytest.raises(ValueError, match="is the input file"):
        write_table(link, table, overwrite=True, inputs=[src])
    with pytest.raises(ValueError, match="is the input file"):
        with atomic_output(src, overwrite=True, inputs=[str(link)]):
            raise AssertionError("not reached")  # pragma: no cover
    with pytest.raises(ValueError, match="is the input file"):
        check_output_file(str(data / "." / "data.arrow"), True, inputs=[src])
    assert _digest(src) == digest
    assert sorted(os.listdir(data)) == ["data.arrow", "data.parquet", "link.arrow"]
    # another path is fine
    write_table(data / "other.arrow", table, inputs=[src])
    assert pa.ipc.open_file(str(data / "other.arrow")).read_all().equals(table)


# ---------------------------------------------------------------------------- #10 outputs
@pytest.mark.parametrize("command", ["split", "convert", "weights", "stats", "generate"])
def test_bad_output_directory_refused_before_work(data, capsys, monkeypatch, command):
    ext = {"split": ".parquet", "weights": ".npy", "stats": ".png"}.get(command, ".arrow")
    cases = {
        "missing": str(data / "nodir" / f"out{ext}"),
        "file as directory": str(data / "data.parquet" / f"out{ext}"),
    }
    before = _snapshot(data)
    _no_work(monkeypatch)
    for why, out in cases.items():
        argv = (["generate", "--n-examples", "50", "-o", out] if command == "generate"
                else _commands(data, out, force=False)[command])
        err = _refused(capsys, argv)
        assert repr(os.path.dirname(out)) in err, (why, err)
        assert ".tmp" not in err
    assert _snapshot(data) == before


@pytest.mark.parametrize("command", ["split", "convert", "weights", "stats", "generate"])
def test_unwritable_directory_refused_before_work(data, capsys, monkeypatch, command):
    ext = {"split": ".parquet", "weights": ".npy", "stats": ".png"}.get(command, ".arrow")
    ro = data / "ro"
    ro.mkdir()
    out = str(ro / f"out{ext}")
    real_access = os.access
    # root writes anywhere: simulate the unwritable (or read-only mounted) directory
    monkeypatch.setattr(os, "access", lambda p, mode, **k: (
        False if os.fspath(p) == str(ro) and mode & os.W_OK else real_access(p, mode, **k)))
    _no_work(monkeypatch)
    argv = (["generate", "--n-examples", "50", "-o", out] if command == "generate"
            else _commands(data, out, force=False)[command])
    err = _refused(capsys, argv)
    assert "not writable" in err and repr(str(ro)) in err
    assert os.listdir(ro) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write into a read-only directory")
def test_unwritable_directory_for_real(data, capsys):
    ro = data / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        err = _refused(capsys, _commands(data, ro / "w.npy")["weights"])
        assert "not writable" in err
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("command", ["split", "convert", "weights", "stats", "generate"])
def test_directory_or_device_as_output_refused_even_with_force(data, capsys, monkeypatch,
                                                                command):
    ext = {"split": ".parquet", "weights": ".npy", "stats": ".png"}.get(command, ".arrow")
    d = data / f"dir{ext}"
    d.mkdir()
    fifo = data / f"fifo{ext}"
    os.mkfifo(fifo)
    _no_work(monkeypatch)
    link = data / f"link{ext}"
    os.symlink(data / f"elsewhere{ext}", link)  # dangling: renaming would replace the link
    # (split and weights may first say which suffix they need)
    for out, what in [(d, "is a directory"), (fifo, "not a regular file"),
                      (link, "is a symbolic link"),
                      (str(data / "sub") + os.sep, "path separator|must end with")]:
        argv = (["generate", "--n-examples", "50", "-o", out, "--force"]
                if command == "generate" else _commands(data, out)[command])
        err = _refused(capsys, argv)
        assert any(w in err for w in what.split("|")), err
    assert d.is_dir() and os.listdir(d) == []
    assert not os.path.isfile(fifo) and os.path.exists(fifo)  # still the FIFO
    assert os.path.islink(link) and not os.path.exists(link)


def test_write_error_names_the_output_not_the_temporary_file(tmp_path):
    out = tmp_path / "out.bin"
    with pytest.raises(OSError) as e:
        with atomic_output(out) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", tmp)
    assert e.value.errno == errno.ENOSPC
    assert repr(str(out)) in str(e.value) and ".tmp" not in str(e.value)
    assert os.listdir(tmp_path) == []
    # an error naming another file (an input read inside the block) is left alone
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        with atomic_output(out):
            open(tmp_path / "elsewhere")
    assert os.listdir(tmp_path) == []


def test_cli_write_failure_is_one_line_exit_1(data, capsys, monkeypatch):
    def full(f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = data / "w.npy"
    err = _refused(capsys, ["weights", data / "data.arrow", "--method", "inverse_frequency",
                            "-o", out], code=1)
    assert "No space left" in err and repr(str(out)) in err and ".tmp" not in err
    assert not out.exists() and not [n for n in os.listdir(data) if n.endswith(".tmp")]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_respect_the_umask(tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        with atomic_output(tmp_path / "a.txt") as tmp:
            open(tmp, "w").write("x")
        write_dataset(tmp_path / "d.arrow", None, _labels(), n_labels=8)
        assert main(["weights", str(tmp_path / "d.arrow"), "--method", "inverse_frequency",
                     "-o", str(tmp_path / "w.npy")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    for name in ["a.txt", "d.arrow", "w.npy"]:
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert lio._umask() == old


# ---------------------------------------------------------------------------- signals
_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from longtail.datasets.io import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"x" * 100000)
        print("writing", tmp, flush=True)
        time.sleep(60)
""")


def test_sigterm_mid_write_removes_the_temporary_file(tmp_path):
    out = tmp_path / "big.bin"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("writing"), line
        assert len(os.listdir(tmp_path)) == 1  # the temporary file exists
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM  # died of the signal, as usual
    finally:
        proc.kill()
        proc.wait()
    assert os.listdir(tmp_path) == []


def test_signal_handler_installed_only_while_writing_and_restored(tmp_path):
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with atomic_output(tmp_path / "a") as tmp:
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            with atomic_output(tmp_path / "b") as tmp2:  # nested: one handler, both files
                assert {tmp, tmp2} <= lio._LIVE_TEMPS
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert not lio._LIVE_TEMPS

        # a handler of the caller's is kept; the exception it raises cleans up
        def mine(signum, frame):
            raise RuntimeError("terminated")

        signal.signal(signal.SIGTERM, mine)
        with pytest.raises(RuntimeError, match="terminated"):
            with atomic_output(tmp_path / "c"):
                assert signal.getsignal(signal.SIGTERM) is mine
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):  # the handler runs between bytecodes
                    pass
        assert signal.getsignal(signal.SIGTERM) is mine
        assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_atomic_output_from_a_thread(tmp_path):
    errors = []

    def work():
        try:
            with atomic_output(tmp_path / "t.txt") as tmp:
                open(tmp, "w").write("ok")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []
    assert (tmp_path / "t.txt").read_text() == "ok"
    assert signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------------------- #10 inputs
def _write_stream(path, table, cut=None):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    raw = sink.getvalue().to_pybytes()
    open(path, "wb").write(raw if cut is None else raw[:cut(len(raw))])


def test_truncated_ipc_stream_is_a_clean_error(data, capsys):
    table = pa.ipc.open_file(str(data / "data.arrow")).read_all()
    src = data / "t.arrows"
    _write_stream(src, table, cut=lambda n: n // 2)
    out = data / "o.arrow"
    err = _refused(capsys, ["convert", src, out])
    assert repr(str(src)) in err and "damaged Arrow IPC stream" in err
    assert not out.exists()
    # the whole stream converts
    _write_stream(data / "ok.arrows", table)
    assert main(["convert", str(data / "ok.arrows"), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out


def _corrupt_parquet(path):
    """A Parquet file whose first data page of column 0 is corrupt (snappy data)."""
    rows = [[i % 7, 7 + i % 5] for i in range(2000)]
    pq.write_table(pa.table({"labels": pa.array(rows, pa.list_(pa.int32())),
                             "g": pa.array(np.arange(2000) // 3)}),
                   path, compression="snappy", use_dictionary=False)
    col = pq.ParquetFile(path).metadata.row_group(0).column(0)
    raw = bytearray(open(path, "rb").read())
    start = col.data_page_offset
    for i in range(start + 40, start + col.total_compressed_size - 8):
        raw[i] ^= 0xA5
    open(path, "wb").write(bytes(raw))
    with pytest.raises(Exception):  # the premise: pyarrow cannot decode it
        pq.read_table(path)


@pytest.mark.parametrize("command", ["convert", "stats", "weights", "split"])
def test_corrupt_parquet_page_error_names_the_file(tmp_path, capsys, command):
    src = tmp_path / "bad.parquet"
    _corrupt_parquet(src)
    before = _snapshot(tmp_path)
    argv = {"convert": ["convert", src, tmp_path / "o.arrow"],
            "stats": ["stats", src],
            "weights": ["weights", src, "--method", "inverse_frequency",
                        "-o", tmp_path / "w.npy"],
            "split": ["split", src, "--folds", "2", "-o", tmp_path / "s.parquet"]}[command]
    err = _refused(capsys, argv)
    assert repr(str(src)) in err
    assert _snapshot(tmp_path) == before


def test_fifo_input_refused_without_blocking(tmp_path):
    fifo = tmp_path / "in.arrow"
    os.mkfifo(fifo)
    for argv in (["stats", str(fifo)], ["convert", str(fifo), str(tmp_path / "o.arrow")]):
        r = subprocess.run([sys.executable, "-m", "longtail.cli", *argv],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert "not a regular file" in r.stderr and "Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["in.arrow"]


# ---------------------------------------------------------------------------- #7 features
@pytest.mark.parametrize("values, expect", [
    ([[1.0, 2.0], [3.0, float("nan")], [5.0, 6.0]], "row 1 has nan at position 1"),
    ([[1.0, 2.0], [3.0, 4.0], [float("-inf"), 6.0]], "row 2 has -inf at position 0"),
    ([[1.0, 2.0], [3.0, None], [5.0, 6.0]], "row 1 has a null at position 1"),
    ([[1.0, 2.0], [3.0, 4.0], [1e39, 6.0]], "row 2 has 1e+39 at position 0 (beyond"),
    ([[1.0, 2.0], None, [5.0, 6.0]], "row 1 is null"),
    (["a", "b", "c"], "features must be lists of numbers, got string"),
    ([["a"], ["b"], ["c"]], "features must be lists of numbers"),
    (pa.array([[], [], []], pa.list_(pa.float64())), "rows have no values"),
    ([[], [], []], "got list<element: null>"),
])
def test_convert_refuses_bad_features(tmp_path, capsys, values, expect):
    src = tmp_path / "f.parquet"
    pq.write_table(pa.table({"labels": pa.array([[0], [1], [0, 1]]),
                             "features": pa.array(values)}), src)
    out = tmp_path / "o.arrow"
    err = _refused(capsys, ["convert", src, out])
    assert expect in err and repr(str(src)) in err and "'features'" in err
    assert not out.exists()


def test_convert_refuses_nan_in_a_sliced_fixed_size_column(tmp_path, capsys):
    feats = pa.FixedSizeListArray.from_arrays(
        pa.array([9.0, 9.0, 1.0, 2.0, 3.0, float("nan")]), 2).slice(1)
    src = tmp_path / "f.arrow"
    with pa.OSFile(str(src), "wb") as sink:
        t = pa.table({"labels": pa.array([[0], [1]]), "emb": feats})
        with pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)
    err = _refused(capsys, ["convert", src, tmp_path / "o.arrow", "--features", "emb"])
    assert "column 'emb': row 1 has nan at position 1" in err
    err = _refused(capsys, ["convert", src, tmp_path / "o.arrow", "--features", "nope"])
    assert "--features" in err and "'nope'" in err


# ---------------------------------------------------------------------------- #9 split sizes
def test_split_huge_folds_checked_before_anything_is_built(data, capsys):
    tracemalloc.start()
    try:
        err = _refused(capsys, ["split", data / "data.parquet", "--folds", "10000000",
                                "-o", data / "s.parquet"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "--folds 10000000" in err and "40 rows" in err
    assert peak < 40_000_000  # a list of 10**7 fractions alone is 80 MB
    assert not (data / "s.parquet").exists()


@pytest.mark.parametrize("fractions, expect", [
    ("0.5,abc", "item 1 ('abc') is not a number"),
    ("nan,0.5", "item 0 is nan"),
    ("0.5,-0.5,1", "item 1 is -0.5"),
    ("1", "at least 2 parts"),
    (",", "item 0 ('') is not a number"),
    ("0.3,0.3", "sum to 1"),
    (",".join(["0.01"] * 100), "100 parts"),
])
def test_split_bad_fractions(data, capsys, fractions, expect):
    err = _refused(capsys, ["split", data / "data.parquet", "--fractions", fractions,
                            "-o", data / "s.parquet"])
    assert expect in err and "--fractions" in err
    assert not (data / "s.parquet").exists()


# ---------------------------------------------------------------------------- the rest
def test_hostile_arguments_end_in_one_line(data, capsys, tmp_path):
    d = data
    (d / "empty.arrow").write_bytes(b"")
    (d / "junk.bin").write_bytes(b"hello world, not a table")
    os.mkdir(d / "adir")
    def split2(*args):   # a 2-fold split of data.parquet with extra arguments
        return ["split", d / "data.parquet", "--folds", "2", *args, "-o", d / "s.parquet"]

    def weights(method, *args):
        return ["weights", d / "data.arrow", "--method", method, *args, "-o", d / "w.npy"]

    cases = [
        (["stats", d / "none.arrow"], "no such file"),
        (["stats", d / "adir"], "directory"),
        (["stats", d / "empty.arrow"], "empty.arrow"),
        (["stats", d / "junk.bin"], "junk.bin"),
        (["stats", d / "data.arrow", "--column", "features"], "'features'"),
        (["stats", d / "data.arrow", "--column", "nope"], "'nope'"),
        (["convert", d / "empty.arrow", d / "o.arrow"], "is empty"),
        (["convert", d / "junk.bin", d / "o.arrow"], "neither a Parquet file"),
        (["convert", d / "adir", d / "o.arrow"], "directory"),
        (["convert", d / "data.arrow", d / "o.arrow", "--labels", "nope"], "'nope'"),
        (["convert", d / "data.arrow", d / "o.arrow", "--features", "labels"], "same column"),
        (["convert", d / "data.parquet", d / "data.arrow"], "--force"),
        (["split", d / "data.parquet", "--folds", "2", "-o", d / "s.arrow"], ".parquet"),
        (["split", d / "data.parquet", "--folds", "0", "-o", d / "s.parquet"], "--folds"),
        (["split", d / "data.parquet", "--folds", "-3", "-o", d / "s.parquet"], "--folds"),
        (["split", d / "data.parquet", "--folds", "41", "-o", d / "s.parquet"], "40 rows"),
        (["split", d / "data.parquet", "-o", d / "s.parquet"], "--fractions or --folds"),
        (split2("--groups", "labels"), "--groups"),
        (split2("--groups", "nope"), "'nope'"),
        (["split", d / "data.arrow", "--folds", "2", "--groups", "features",
          "-o", d / "s.parquet"], "--groups"),
        (split2("--seed", "-1"), "seed"),
        (["weights", d / "data.arrow", "--method", "inverse_frequency", "-o", d / "w.txt"],
         ".npy"),
        (weights("repeat_factor", "--threshold", "-1"), "--threshold"),
        (weights("repeat_factor", "--threshold", "nan"), "--threshold"),
        (weights("repeat_factor", "--power", "2"), "--power"),
        (weights("exposure", "--max-iter", "0"), "--max-iter"),
        (["generate", "--n-examples", "0", "-o", d / "g.arrow"], "n_examples"),
        (["generate", "--n-examples", "-5", "-o", d / "g.arrow"], "n_examples"),
        (["generate", "--seed", "-1", "-o", d / "g.arrow"], "seed"),
        (["generate", "-o", d / "data.arrow"], "--force"),
    ]
    before = _snapshot(d)
    for argv, expect in cases:
        err = _refused(capsys, argv)
        assert expect in err, (argv, err)
    assert _snapshot(d) == before


def test_internal_errors_and_interrupts_are_one_line(data, capsys, monkeypatch):
    import longtail.samplers.weights.weighting as weights

    def bug(*a, **k):
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(weights, "sample_weights", bug)
    argv = ["weights", data / "data.arrow", "--method", "inverse_frequency",
            "-o", data / "w.npy"]
    err = _refused(capsys, argv, code=1)
    assert "internal error" in err and "IndexError: index 7" in err

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "sample_weights", interrupted)
    assert "interrupted" in _refused(capsys, argv, code=130)
    monkeypatch.setenv("LONGTAIL_DEBUG", "1")
    monkeypatch.setattr(weights, "sample_weights", bug)
    with pytest.raises(IndexError):
        main([str(a) for a in argv])
    assert not (data / "w.npy").exists()


def test_split_groups_and_outputs_still_work(data, capsys):
    out = data / "s.parquet"
    assert main(["split", str(data / "data.parquet"), "--fractions", "0.5,0.5", "--groups",
                 "group", "-o", str(out)]) == 0
    capsys.readouterr()
    t = pq.read_table(out)
    assert t.column_names == ["index", "part"] and t.num_rows == 40
    part = t.column("part").to_numpy()
    assert (part[0::2] == part[1::2]).all()  # a group (two rows) is never split
