"""flywheel's mapper runner.

The flywheel worker starts this file in a child process (one per worker, living across chunks) and
speaks the protocol of docs/protocol.md with it over stdin and a private copy of stdout: JSON
lines, with chunks of rows as Arrow IPC streams when pyarrow is importable (the fast path), in
shared memory (two memfds the worker hands it) or after the lines that announce them. Before any
user code runs, file descriptor 1 is pointed at stderr, so a mapper's print() (or a C library
writing to stdout) lands in the job log and can never corrupt the data stream.

The runner ships inside the flywheel binary; users need not install it.
"""

import base64
import gc
import importlib.util
import inspect
import json
import mmap
import os
import random
import sys
import traceback

# Started with --fork-server, this process is the worker's fork server (flywheel_fork_server.py):
# it imports pyarrow and the mapper's module once and forks a mapper process per (re)start.
FORK_SERVER = __name__ == "__main__" and sys.argv[1:2] == ["--fork-server"]

if __name__ == "__main__":
    # The first protocol line, before anything slow (pyarrow, the user's imports, start()): the
    # worker's handshake deadline covers only this line; "ready" then has the chunk timeout. A
    # fork server says it on its control socket (its stdin).
    os.write(0 if FORK_SERVER else 1, b'{"starting": true}\n')

try:
    import pyarrow as pa
    import pyarrow.ipc  # noqa: F401
except ImportError:  # the JSON-lines path needs nothing but the standard library
    pa = None

ARROW = pa is not None and os.environ.get("FLYWHEEL_PROTOCOL", "auto") != "json"
# Columns whose values flywheel must check itself (magic bytes, JSON text): sent as JSON rows.
CHECKED_TYPES = ("image", "audio", "video", "json", "any")


def _send(out, obj):
    try:
        text = json.dumps(obj, default=_json_default, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or an infinity, which JSON has no number for
        text = json.dumps(_finite(obj), default=_json_default, ensure_ascii=False, allow_nan=False)
    out.write(text)
    out.write("\n")


BYTES_KEY = "__bytes__"
# NaN and the infinities travel as {"__float__": "nan" | "inf" | "-inf"}; flywheel stores them as
# the float values, as the Arrow path does.
FLOAT_KEY = "__float__"


def _finite(value):
    """value with every NaN and infinity replaced by its marker (numpy values included)."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        if value != value:
            return {FLOAT_KEY: "nan"}
        if value in (float("inf"), float("-inf")):
            return {FLOAT_KEY: "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value):
    # Bytes travel as {"__bytes__": base64}; numpy scalars and arrays become Python values.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    if type(value).__name__ == "Decimal":
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} cannot be written to a table: {value!r:.80}")


def _import(spec):
    """The mapper's module, imported (its directory first on sys.path), with the mapper's name
    and the file's path."""
    path, _, name = spec.rpartition(":")
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import mapper file {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module, name, path


def _instantiate(loaded, kwargs):
    """The mapper itself: the class instantiated with the --mapper-arg values and started, or
    the function."""
    module, name, path = loaded
    if not hasattr(module, name):
        raise AttributeError(f"{path} defines no '{name}'")
    target = getattr(module, name)
    if inspect.isclass(target):
        instance = target(**kwargs)
        if hasattr(instance, "start"):
            instance.start()
        return instance
    if kwargs:
        raise TypeError(f"--mapper-arg given, but {name} is a function, not a class")
    if not callable(target):
        raise TypeError(f"{name} in {path} is not callable")
    return target


def _dependencies(mapper, loaded):
    """The files the mapper depends on besides its own file, the interpreter and its installed
    packages: every loaded module's file outside the standard library and site-packages (the
    helpers it imports, whatever start() imported), and the files or directories it declares in
    `depends_on` (relative to the current directory, as an open() in start() would take them).
    The worker records them in the version's lineage; an incremental job re-hashes them."""
    import site
    import sysconfig
    installed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    installed.update(sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib"))
    try:
        installed.update(site.getsitepackages())
        installed.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site module
        pass
    installed.add(os.path.dirname(os.path.abspath(__file__)))  # the runner itself
    installed.discard("")
    # Paths as given and resolved: most modules are told apart by the string alone (a realpath
    # per module of torch's thousands would cost every process start).
    skip = tuple({p + os.sep for p in installed} | {os.path.realpath(p) + os.sep for p in installed})
    files = set()
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if not isinstance(f, str) or not f or f.startswith(skip):
            continue
        f = os.path.realpath(f)
        if not f.startswith(skip) and os.path.isfile(f):
            files.add(f)
    # The mapper's own file is in the fingerprint already (by content).
    files.discard(os.path.realpath(loaded[2]))
    declared = getattr(mapper, "depends_on", None)
    if declared is None:
        declared = getattr(getattr(loaded[0], loaded[1], None), "depends_on", ())
    if isinstance(declared, (str, os.PathLike)):
        declared = [declared]
    for d in declared or ():
        files.add(os.path.realpath(os.fspath(d)))
    return sorted(files)


def _outputs(result):
    """A mapper call may return a dict, None, or an iterable (list, generator) of dicts."""
    if result is None:
        return ()
    if isinstance(result, dict):
        return (result,)
    return result


def _decode_bytes(rows, columns):
    """Input columns of binary type arrive base64-encoded; give the mapper bytes."""
    if not columns:
        return rows
    b64decode = base64.b64decode
    for row in rows:
        for c in columns:
            v = row.get(c)
            if v is not None:
                row[c] = b64decode(v)
    return rows


def _seed_generators(seed):
    """Seeds the global generators a mapper draws from without seeding them itself: Python's
    `random`, numpy's legacy global one (`np.random.random()`…) and torch's, each only if its
    module is already imported (importing numpy or torch here would cost every mapper)."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None and hasattr(numpy, "random"):
        numpy.random.seed([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF])
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "manual_seed"):
        torch.manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)  # within every version's int64


def _begin_chunk(mapper, seed, rows, out):
    """Seeds the global generators (see _seed_generators) with the chunk's seed and calls the
    mapper's `begin_chunk(seed)`, if it has one, before every attempt: an attempt's random draws
    depend only on its chunk, even when the same chunk runs twice in a row in this process, or
    in processes forked from one fork server (which would otherwise share one random state).
    Whether the chunk can run; if `begin_chunk` raised, every row of the chunk is reported
    failed."""
    _seed_generators(seed)
    begin = getattr(mapper, "begin_chunk", None)
    if begin is None:
        return True
    try:
        begin(seed)
    except Exception as exc:  # noqa: BLE001 - any user error is reported, not fatal
        _send(out, {"error": {
            "row": 0,
            "rows": rows,
            "message": f"begin_chunk: {type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }})
        return False
    return True


def _run_chunk(mapper, rows, out, skip_errors, produced):
    """Calls the mapper on every row (or batch); appends each output row to produced.rows and
    its input row's index to produced.sources, and reports errors at once. Returns (count,
    failed)."""
    count = 0
    batch_size = getattr(mapper, "batch_size", None)
    step = batch_size if isinstance(batch_size, int) and batch_size > 0 else None
    units = ((i, rows[i : i + step]) for i in range(0, len(rows), step)) if step else enumerate(rows)
    for index, unit in units:
        try:
            emitted = []
            for row in _outputs(mapper(unit)):
                if not isinstance(row, dict):
                    raise TypeError(f"mapper yielded {type(row).__name__}, expected dict")
                emitted.append(row)
        except Exception as exc:  # noqa: BLE001 - any user error is reported, not fatal
            _send(out, {"error": {
                "row": index,
                "rows": len(unit) if step else 1,
                "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }})
            if not skip_errors:
                return count, True
            continue
        produced.rows.extend(emitted)
        produced.sources.extend([index] * len(emitted))
        count += len(emitted)
    return count, False


def _read_exact(stream, n):
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"expected {n} bytes from the worker, got {len(data)}")
    return data


def _plain(t):
    """Whether pyarrow inferred a type flywheel can store (no null-typed parts)."""
    if (pa.types.is_null(t) or pa.types.is_decimal(t) or pa.types.is_time(t) or pa.types.is_duration(t)
            or pa.types.is_interval(t) or pa.types.is_dictionary(t) or pa.types.is_union(t)):
        return False
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _plain(t.value_type)
    if pa.types.is_struct(t):
        # An empty struct (from {}) has no Arrow storage: flywheel decides its type from JSON.
        return t.num_fields > 0 and all(_plain(t.field(i).type) for i in range(t.num_fields))
    return True


class _Produced:
    """A chunk's output rows and, for each, the index of the input row it came from."""

    __slots__ = ("rows", "sources")

    def __init__(self):
        self.rows, self.sources = [], []


def _arrow_output(produced, target):
    """The output rows as an Arrow table with their input rows' column, or None when they must
    travel as JSON (a column flywheel checks itself, or rows pyarrow cannot convert: flywheel
    then names the bad row)."""
    if target is not None:
        for f in target:
            kind = (f.metadata or {}).get(b"flywheel.type", b"").decode()
            if any(k in kind for k in CHECKED_TYPES):
                return None
    rows = produced.rows
    try:
        if target is not None:
            names = set(target.names)
            if any(not names.issuperset(r) for r in rows):
                return None
            # Nullability is flywheel's to check (it names the row); send every column nullable.
            loose = pa.schema([f.with_nullable(True) for f in target], metadata=target.metadata)
            table = pa.Table.from_pylist(rows, schema=loose)
        else:
            first = rows[0].keys()
            if first and all(r.keys() == first for r in rows):
                # Every row has the same keys: column by column, the same names, order and
                # inferred types as the struct inference below, two and a half times faster.
                table = pa.Table.from_pylist(rows)
            else:
                table = pa.Table.from_struct_array(pa.array(rows))
            if not all(_plain(f.type) for f in table.schema):
                return None
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return table.append_column("__flywheel_in", pa.array(produced.sources, pa.uint64()))


def _write_ipc(sink, table):
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


_SHM_REFUSED = False


def _write_shm(fd, table):
    """Writes the table as an Arrow IPC stream from the start of the output memfd, straight into
    the pages the worker reads; returns its length, or None when the memfd cannot hold it (a
    memory limit: the table then goes through the pipe)."""
    mock = pa.MockOutputStream()
    _write_ipc(mock, table)
    n = mock.size()
    try:
        size = os.fstat(fd).st_size
        if size > 4 * n:
            os.ftruncate(fd, n)  # a far smaller chunk than the largest so far: give pages back
        # Allocates the pages now, so that running out of memory is an error here rather than
        # a SIGBUS while writing through the mapping.
        os.posix_fallocate(fd, 0, n)
        region = mmap.mmap(fd, n)
    except OSError as exc:
        global _SHM_REFUSED
        if not _SHM_REFUSED:  # said once per process, in the job log
            _SHM_REFUSED = True
            print(f"flywheel: {n} bytes of output do not fit in shared memory ({exc}); "
                  "such chunks go through the pipe", file=sys.stderr, flush=True)
        return None
    try:
        sink = pa.FixedSizeBufferWriter(pa.py_buffer(region))
        _write_ipc(sink, table)
        sink.close()
        del sink
    finally:
        _unmap(region)
    return n


def _unmap(region):
    try:
        region.close()
    except BufferError:  # a pyarrow buffer still points into it: unmapped when that goes
        pass


def _send_output(out, produced, target, arrow, shm):
    if not produced.rows:
        return
    table = _arrow_output(produced, target) if arrow else None
    if table is None:
        for row, index in zip(produced.rows, produced.sources):
            _send(out, {"row": row, "in": index})
        return
    n = _write_shm(shm[1], table) if shm else None
    if n is not None:
        _send(out, {"arrow": {"bytes": n, "rows": len(produced.rows), "shm": True}})
        return
    sink = pa.BufferOutputStream()
    _write_ipc(sink, table)
    data = sink.getvalue()
    _send(out, {"arrow": {"bytes": data.size, "rows": len(produced.rows)}})
    out.flush()
    out.buffer.write(data)
    out.buffer.flush()


def _shared_memory():
    """The input and output memfds the worker gave this process (FLYWHEEL_SHM_FDS=IN,OUT), or
    None (the Arrow fast path then goes through the pipes). Taken out of the environment, so the
    mapper's own subprocesses neither see nor inherit them."""
    spec = os.environ.pop("FLYWHEEL_SHM_FDS", "")
    if not ARROW or not spec:
        return None
    try:
        fds = tuple(int(x) for x in spec.split(","))
        if len(fds) != 2:
            return None
        for fd in fds:
            os.fstat(fd)
            os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fds


def _read_shm(fd, header):
    """A chunk's rows (and the table schema, if sent) from the input memfd, mapped, not copied."""
    n, s = header["arrow_bytes"], header.get("schema_bytes") or 0
    region = mmap.mmap(fd, n + s, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                       prot=mmap.PROT_READ)
    try:
        data = pa.py_buffer(region)
        rows = pa.ipc.open_stream(data.slice(0, n)).read_all().to_pylist()
        target = pa.ipc.open_stream(data.slice(n, s)).schema if s else None
        del data
    finally:
        _unmap(region)
    return rows, target


def _warm_up():
    """Runs the runner's pyarrow paths once on a tiny table. In the fork server, so that every
    forked mapper process starts with them loaded: pyarrow imports pandas on its first
    conversion of Python rows, a third of a second that each new process would otherwise pay
    in its first chunk."""
    if pa is None:
        return
    rows = [{"i": 1, "s": "x", "l": [1.0], "d": {"b": True}, "y": b"\0"}]
    table = pa.Table.from_pylist(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    pa.ipc.open_stream(sink.getvalue()).read_all().to_pylist()
    pa.Table.from_struct_array(pa.array(rows))


def main(loaded=None):
    """Speaks the protocol on stdin and stdout until stdin ends. `loaded` is the mapper's module
    when a fork server imported it before forking this process (see _import)."""
    # Slurm's time-limit warning is for the coordinator, which checkpoints; a mapper finishes
    # its chunk.
    import signal
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)
    out = os.fdopen(out_fd, "w", buffering=1 << 16, encoding="utf-8")
    stdin = sys.stdin.buffer

    spec = os.environ["FLYWHEEL_MAPPER"]
    shm = _shared_memory()
    kwargs = json.loads(os.environ.get("FLYWHEEL_MAPPER_ARGS", "{}"))
    skip_errors = os.environ.get("FLYWHEEL_ON_ROW_ERROR", "fail") == "skip"
    try:
        loaded = loaded or _import(spec)
        # Draws in the constructor and start() come from the worker's seed: the same in every
        # process of one worker (a restart repeats them), different between workers, never the
        # state a fork server's processes would otherwise share.
        _seed_generators(int(os.environ.get("FLYWHEEL_START_SEED", "0")))
        mapper = _instantiate(loaded, kwargs)
    except BaseException:  # noqa: BLE001 - reported to the worker, which fails the chunk
        _send(out, {"fatal": traceback.format_exc()})
        out.flush()
        sys.exit(1)
    try:
        depends = _dependencies(mapper, loaded)
    except Exception:  # noqa: BLE001 - an odd module table costs the report, not the job
        depends = []
    _send(out, {"ready": True, "arrow": ARROW, "shm": shm is not None, "depends": depends})
    out.flush()
    # A chunk allocates hundreds of thousands of short-lived dicts and lists (its rows). With
    # CPython's default thresholds the cycle collector runs every 700 allocations and keeps
    # traversing everything alive, the mapper's model included: a quarter of the runner's time.
    # What start() built is frozen out of collections, collections run a hundred times less
    # often, and each chunk's garbage is collected once, at its end.
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)

    for line in stdin:
        if not line.strip():
            continue
        header = json.loads(line)["chunk"]
        arrow = "arrow_bytes" in header
        target = None
        if arrow and header.get("shm"):
            rows, target = _read_shm(shm[0], header)
        elif arrow:
            rows = pa.ipc.open_stream(_read_exact(stdin, header["arrow_bytes"])).read_all().to_pylist()
            if header.get("schema_bytes"):
                target = pa.ipc.open_stream(_read_exact(stdin, header["schema_bytes"])).schema
        else:
            rows = [json.loads(stdin.readline()) for _ in range(header["rows"])]
            rows = _decode_bytes(rows, header.get("bytes_columns"))
        seed = int(header["seed"])
        os.environ["FLYWHEEL_CHUNK"] = str(header["chunk"])
        os.environ["FLYWHEEL_SEED"] = str(seed)
        os.environ["FLYWHEEL_ATTEMPT"] = str(header.get("attempt", 1))
        os.environ["FLYWHEEL_WORKER"] = str(header["worker"])
        produced_rows = _Produced()
        if _begin_chunk(mapper, seed, len(rows), out):
            produced, failed = _run_chunk(mapper, rows, out, skip_errors, produced_rows)
        else:
            produced, failed = 0, not skip_errors
        _send_output(out, produced_rows, target, arrow, shm)
        _send(out, {"end": {"chunk": header["chunk"], "attempt": header.get("attempt"), "rows_out": produced, "failed": failed}})
        out.flush()
        del rows, produced_rows
        gc.collect(1)

    if hasattr(mapper, "finish"):
        mapper.finish()


if __name__ == "__main__":
    if FORK_SERVER:
        import flywheel_fork_server

        # Returns only in a forked mapper process, with the module it imported before forking.
        main(flywheel_fork_server.serve(_import, _warm_up))
    else:
        main()
