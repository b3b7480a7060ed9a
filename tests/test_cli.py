import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longtail import LabelMatrix
from longtail.cli import main
from longtail.datasets import ArrowDataset


def test_generate_stats_convert(tmp_path, capsys):
    out = tmp_path / "d.arrow"
    assert main(["generate", "--preset", "small", "--n-examples", "500", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(ArrowDataset(out)) == 500
    with pytest.raises(SystemExit) as e:  # no overwrite without --force
        main(["generate", "--preset", "small", "-o", str(out)])
    assert e.value.code == 2 and "--force" in capsys.readouterr().err
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["n_examples"] == 500 and stats["n_labels"] == 500
    png = tmp_path / "s.png"
    assert main(["stats", str(out), "--plot", str(png)]) == 0
    assert "MeanIR" in capsys.readouterr().out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_convert_parquet_and_compressed(tmp_path, capsys):
    table = pa.table({
        "labels": pa.array([[2, 0], [1], []], pa.list_(pa.int64())),
        "features": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], pa.list_(pa.float64())),
        "id": ["a", "b", "c"],
    })
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    out = tmp_path / "out.arrow"
    with pytest.raises(SystemExit):  # unsorted rows are refused ...
        main(["convert", str(src), str(out)])
    assert "row 0 are not sorted" in capsys.readouterr().err
    assert not out.exists()  # ... and nothing is written
    assert main(["convert", str(src), str(out), "--canonicalize"]) == 0
    ds = ArrowDataset(out)
    assert ds.labels[0].tolist() == [0, 2]
    np.testing.assert_array_equal(ds.features, [[1, 2], [3, 4], [5, 6]])
    # a compressed IPC file is refused by open() and fixed by convert
    comp = tmp_path / "c.arrow"
    with pa.OSFile(str(comp), "wb") as sink:
        with pa.ipc.new_file(sink, ArrowDataset(out).labels.to_arrow().type and
                             pa.schema([("labels", pa.large_list(pa.int32()))]),
                             options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_table(pa.table({"labels": pa.array([[0], [1]], pa.large_list(pa.int32()))}))
    with pytest.raises(SystemExit):
        main(["stats", str(comp)])
    assert "compressed" in capsys.readouterr().err
    fixed = tmp_path / "fixed.arrow"
    assert main(["convert", str(comp), str(fixed)]) == 0
    assert LabelMatrix.open(fixed).nnz == 2


def test_bad_inputs(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["stats", str(tmp_path / "none.arrow")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--preset", "small", "-o", str(tmp_path / "no" / "dir.arrow")])
    assert "output directory does not exist" in capsys.readouterr().err
