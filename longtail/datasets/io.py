"""Atomic file output and Arrow file access: the layer below LabelMatrix and the dataset
file (this module imports neither; :mod:`longtail.datasets.dataset_file` writes datasets).

Every output is written to a temporary file next to its target and renamed into place
(:func:`atomic_output`); every input is checked before use (:func:`check_input_file`,
:func:`open_ipc`), and an error names the file.

Example
-------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "new.arrow")
>>> check_output_file(path, overwrite=False) == path   # refuses existing files
True
>>> check_input_file(path)
Traceback (most recent call last):
...
longtail.datasets.io.LabelFileError: ...
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

PathLike = str | os.PathLike


class LabelFileError(FileNotFoundError, ValueError):
    """A label or dataset file that does not exist (both FileNotFoundError and ValueError)."""


def check_input_file(path: PathLike) -> str:
    """Return ``path`` as a string, or raise :class:`LabelFileError` naming it."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise LabelFileError(f"no such file: {p!r}")
    if os.path.isdir(p):
        raise ValueError(f"expected a file, got a directory: {p!r}")
    return p


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (symlinks, hard links, ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_file(path: PathLike, overwrite: bool,
                      inputs: "Sequence[PathLike]" = ()) -> str:
    """Validate an output path before any work starts; return it as a string.

    Refuses (``ValueError``) an empty path or one ending in a separator, a missing or
    unwritable directory, an output that is the same file as one of ``inputs``
    (compared with ``os.path.samefile``, so symlinks, hard links and relative paths are
    caught), and, whatever ``overwrite`` says, an existing directory, symbolic link or
    non-regular file (a device, a FIFO): outputs are renamed into place, which would
    replace the link or the device node. An existing file raises ``FileExistsError``
    unless ``overwrite``.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp(); src = os.path.join(d, "in.arrow"); _ = open(src, "w")
    >>> check_output_file(os.path.join(d, "out.arrow"), False, inputs=[src])[-9:]
    'out.arrow'
    >>> check_output_file(src, True, inputs=[src])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: output ... is the input file ...; write to another path
    """
    import stat

    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"output path must be str or PathLike of str, got {p!r}")
    if not p or "\0" in p:
        raise ValueError(f"output path {p!r} is empty or contains a NUL byte")
    if p.endswith(os.sep) or (os.altsep and p.endswith(os.altsep)):
        raise ValueError(f"output {p!r} ends with a path separator; give a file name")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise ValueError(f"output directory {parent!r} is not a directory (for {p!r})")
        raise ValueError(f"output directory does not exist: {parent!r} (for {p!r})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output directory is not writable: {parent!r} (for {p!r})")
    for inp in inputs:
        q = os.fspath(inp)
        if _same_file(p, q):
            raise ValueError(f"output {p!r} is the input file {q!r}; write to another path")
    if os.path.lexists(p):
        if os.path.isdir(p):
            raise ValueError(f"output {p!r} is a directory; give a file name")
        if os.path.islink(p):  # renaming over it would replace the link, not its target
            raise ValueError(f"output {p!r} is a symbolic link (to {os.readlink(p)!r}); "
                             "give the path of the file itself, or remove the link")
        if not stat.S_ISREG(os.stat(p).st_mode):
            raise ValueError(f"output {p!r} exists and is not a regular file (a device, FIFO "
                             "or socket); outputs are written by renaming a new file into "
                             "place: give a file path")
        if not overwrite:
            raise FileExistsError(
                f"{p!r} exists; pass overwrite=True (CLI: --force) to replace it")
    return p


# Temporary files of the atomic_output contexts alive in this process: removed by the
# SIGTERM/SIGHUP handler that the main thread installs while at least one is open.
_LIVE_TEMPS: set[str] = set()
_SAVED_HANDLERS: dict[int, Any] = {}
_HANDLER_STATE = {"depth": 0, "pid": 0}


def _umask() -> int:
    """The process umask, read without changing it where the OS allows it."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # restrictive during the swap: a file made meanwhile is safe
    os.umask(mask)
    return mask


def _on_terminate(signum: int, frame: Any) -> None:
    """Remove live temporary files, then die of ``signum`` as the default action would."""
    import signal

    if os.getpid() == _HANDLER_STATE["pid"]:  # not in a forked child: its parent's files
        for tmp in list(_LIVE_TEMPS):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # pragma: no cover - the default action ends the process


def _track_temp(tmp: str) -> bool:
    """Register ``tmp``; in the main thread, install the cleanup handler (once)."""
    import signal
    import threading

    _LIVE_TEMPS.add(tmp)
    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers can only be set from the main thread
    if _HANDLER_STATE["depth"] == 0:
        _HANDLER_STATE["pid"] = os.getpid()
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            # replace only the default action (die): a handler of the caller's (or an
            # ignored signal) is left alone; an exception it raises cleans up anyway
            if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
                _SAVED_HANDLERS[sig] = signal.signal(sig, _on_terminate)
    _HANDLER_STATE["depth"] += 1
    return True


def _untrack_temp(tmp: str, in_main: bool) -> None:
    import signal

    _LIVE_TEMPS.discard(tmp)
    if not in_main:
        return
    _HANDLER_STATE["depth"] -= 1
    if _HANDLER_STATE["depth"] == 0:
        for sig, previous in list(_SAVED_HANDLERS.items()):
            if signal.getsignal(sig) is _on_terminate:  # not replaced by someone since
                signal.signal(sig, previous)
        _SAVED_HANDLERS.clear()


def _naming_output(exc: OSError, tmp: str, final: str) -> OSError:
    """``exc`` with the temporary file's name replaced by the output's."""
    msg = str(exc.strerror or exc) if exc.errno else str(exc)
    msg = msg.replace(tmp, final).replace(os.path.basename(tmp), os.path.basename(final))
    if exc.errno:
        return OSError(exc.errno, f"cannot write {final!r}: {msg}")
    return OSError(f"cannot write {final!r}: {msg}")


@contextlib.contextmanager
def atomic_output(path: PathLike, overwrite: bool = False, *,
                  inputs: "Sequence[PathLike]" = ()) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    The output is checked first (:func:`check_output_file`: directory exists and is
    writable, no clobbering unless ``overwrite``, not the same file as any of
    ``inputs``). The temporary file ``.NAME.XXXXXXXX.tmp`` is created in the output's
    directory, given the usual permissions (``0o666`` less the umask) and renamed over
    ``path`` when the block ends without an exception; on an exception it is removed.
    While a block is open in the main thread, SIGTERM and SIGHUP (when their action is
    the default one) remove the temporary file before the process dies of the signal;
    the previous handlers are restored afterwards. A process killed by SIGKILL (or the
    OOM killer, or a power cut) cannot clean up and can leave a ``.NAME.*.tmp`` file next
    to the output: the output itself is never half-written, and such leftovers can be
    deleted.

    Example
    -------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_output(target) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(target).read()
    'done'
    """
    inputs = [os.fspath(q) for q in inputs]
    final = check_output_file(path, overwrite, inputs)
    directory = os.path.dirname(os.path.abspath(final))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(final) + ".",
                                   suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create a file in {directory!r} for {final!r}: "
                                 f"{exc.strerror}") from None
    os.close(fd)
    in_main = _track_temp(tmp)
    try:
        try:
            yield tmp
            if os.path.lexists(final) and not overwrite:
                raise FileExistsError(f"{final!r} appeared while writing; not replaced")
            with contextlib.suppress(OSError):  # some mounts refuse chmod: keep 0o600
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0o600
            os.replace(tmp, final)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            # an I/O error of the writer (disk full...) names the output, not the
            # temporary file; one naming another file (an input read in the block) and
            # the FileExistsError above are left as they are
            if (type(exc) is not FileExistsError and isinstance(exc, OSError)
                    and (tmp in str(exc) or exc.filename in (None, tmp))):
                raise _naming_output(exc, tmp, final) from exc
            raise
    finally:
        _untrack_temp(tmp, in_main)


def labels_field_array(labels: Any) -> tuple["pa.Field", "pa.Array"]:
    """The Arrow field and ``large_list<int32>`` array of a LabelMatrix (zero-copy)."""
    import pyarrow as pa

    arr = pa.LargeListArray.from_arrays(pa.array(labels.offsets), pa.array(labels.indices))
    field = pa.field("labels", arr.type, nullable=False, metadata={
        "longtail.n_labels": str(labels.n_labels), "longtail.canonical": "1"})
    return field, arr


def features_array(features: np.ndarray) -> "pa.Array":
    """A ``fixed_size_list<float32>[d]`` array over a float32 (n, d) matrix (zero-copy)."""
    import pyarrow as pa

    features = np.ascontiguousarray(features, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])


def write_table(path: PathLike, table: "pa.Table", overwrite: bool = False, *,
                inputs: "Sequence[PathLike]" = ()) -> None:
    """Write ``table`` as one uncompressed IPC record batch, atomically.

    ``inputs``: files the output must not be (see :func:`atomic_output`).
    """
    import pyarrow as pa

    with atomic_output(path, overwrite, inputs=inputs) as tmp:
        with pa.OSFile(tmp, "wb") as sink:
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table, max_chunksize=max(table.num_rows, 1))


def open_ipc(path: PathLike) -> tuple[str, "pa.RecordBatch | pa.Table", int, int]:
    """Memory-map an IPC file: ``(path, batch_or_table, map_address, map_size)``.

    A single-batch file gives its RecordBatch (zero-copy); a multi-batch file gives a
    Table. Raises ValueError for a file that is not Arrow IPC or has no rows.
    """
    import pyarrow as pa

    p = check_input_file(path)
    source = pa.memory_map(p, "r")
    size = source.size()
    base = source.read_buffer(size).address if size else 0  # zero-copy view of the map
    source.seek(0)
    try:
        reader = pa.ipc.open_file(source)
    except (pa.ArrowException, OSError) as exc:
        hint = " (Parquet? use LabelMatrix.read_parquet or `longtail convert`)" \
            if Path(p).suffix.lower() in {".parquet", ".pq"} else ""
        raise ValueError(f"{p!r} is not an Arrow IPC file{hint}: {exc}") from None
    try:
        if reader.num_record_batches == 1:
            data = reader.get_batch(0)
        else:
            data = reader.read_all()
        data.validate()  # buffer sizes against lengths (cheap; ids are checked later)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{p!r} is a damaged Arrow IPC file (truncated?): {exc}") from None
    if data.num_rows == 0:
        raise ValueError(f"{p!r} has zero rows")
    return p, data, base, size


def column_of(data: "pa.RecordBatch | pa.Table", column: str, path: str) -> Any:
    """Column ``column`` of an IPC batch/table, with an error naming what is there."""
    names = data.schema.names
    if column not in names:
        raise ValueError(f"{path!r} has no column {column!r} (columns: {names})")
    return data.column(names.index(column))


def check_mapped(array: "pa.Array", base: int, size: int, path: str) -> None:
    """Raise if ``array``'s buffers are not inside the memory map (a compressed file)."""
    for buf in array.buffers():
        if buf is None or buf.size == 0:
            continue
        if not (base <= buf.address and buf.address + buf.size <= base + size):
            raise ValueError(
                f"{path!r} is a compressed (or otherwise non-mappable) Arrow IPC file: "
                "longtail memory-maps uncompressed IPC only; convert it once with "
                "`longtail convert IN OUT`"
            )


def read_features(path: PathLike, column: str = "features") -> np.ndarray:
    """The (n, d) float32 feature matrix of a dataset file, memory-mapped (read-only).

    Example
    -------
    >>> # read_features("data.arrow").shape -> (n, d)
    """
    import pyarrow as pa

    p, data, base, size = open_ipc(path)
    col = column_of(data, column, p)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_fixed_size_list(col.type):
        raise TypeError(f"{p!r} column {column!r} must be fixed_size_list<float>, got {col.type}")
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise ValueError(f"{p!r} column {column!r} has a null at row {row}")
    d = col.type.list_size
    values = col.values.to_numpy(zero_copy_only=False)
    values = values[col.offset * d:(col.offset + len(col)) * d]
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    return values.reshape(len(col), d)


def file_fingerprint(path: PathLike) -> tuple[int, int, int]:
    """``(size, mtime_ns, inode)`` of a file: what tells a re-opened file from the one mapped.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     file_fingerprint(f.name)[0]
    0
    """
    st = os.stat(path)
    return int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)
