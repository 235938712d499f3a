"""fastnn's files on disk: safetensors with a checksum, written crash-safely.

Every file fastnn writes is a plain safetensors file (tensors plus a str -> str
metadata dict), so other tools (PyTorch's ``safetensors.torch.load_file``) read
it.  fastnn adds to the metadata:

- ``fastnn.kind``: "model", "weights" or "checkpoint";
- ``fastnn.format``: the version of fastnn's layout of these files;
- ``fastnn.sha256``: a SHA-256 over the other metadata and every tensor's name,
  dtype, shape and bytes.  safetensors itself has no checksum: this is what
  turns a flipped bit into an error instead of wrong numbers.

Writes go to a temporary file in the target's folder, are flushed and fsynced,
moved over the target with ``os.replace`` (atomic on POSIX) and the folder is
fsynced, so a crash at any moment leaves either the old file or the new one.
Reading never executes anything from the file: the header is JSON, the tensors
are raw little-endian bytes, decoded by safetensors.
"""
import hashlib
import json
import os
import struct
import tempfile

import numpy as np

FORMAT_VERSION = "1"
KIND_KEY = "fastnn.kind"
FORMAT_KEY = "fastnn.format"
CHECKSUM_KEY = "fastnn.sha256"

# Header size limit, as safetensors' own (100 MB): a larger value means another format.
_MAX_HEADER = 100_000_000

# Test hook: when set, called as ``hook(file, data)`` instead of ``file.write(data)``
# while writing the temporary file (the crash-safety tests make it kill the process
# half way through a write).
_write_hook = None


def _safetensors_numpy():
    try:
        import safetensors.numpy as stn
    except ImportError:  # a runtime dependency, but say how to fix a broken install
        raise ImportError("fastnn.io needs safetensors: pip install 'safetensors>=0.4'") from None
    return stn


def _le(a):
    """A C-contiguous little-endian array (what safetensors stores)."""
    a = np.asarray(a)
    if not a.flags.c_contiguous:
        a = a.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def checksum(tensors, metadata):
    """SHA-256 (hex) over the metadata (except the checksum itself) and every tensor."""
    h = hashlib.sha256()
    meta = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        a = _le(tensors[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        if a.size:
            h.update(memoryview(a.reshape(-1)).cast("B"))
    return h.hexdigest()


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the replace is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data):
    """Write ``data`` (bytes) to ``path`` crash-safely: temp file, fsync, os.replace, fsync of the folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"cannot write {path!r}: it is a directory; expected a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            if _write_hook is not None:
                _write_hook(f, data)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def write(path, tensors, metadata, kind):
    """Save ``tensors`` ({name: ndarray}) and ``metadata`` ({str: str}) as a checksummed safetensors file."""
    stn = _safetensors_numpy()
    tensors = {name: _le(a) for name, a in tensors.items()}
    meta = dict(metadata)
    meta[KIND_KEY] = kind
    meta[FORMAT_KEY] = FORMAT_VERSION
    meta[CHECKSUM_KEY] = checksum(tensors, meta)
    atomic_write(path, stn.save(tensors, metadata=meta))


def _bad(path, what):
    return ValueError(f"{os.fspath(path)!r} is not a readable safetensors file: {what}")


def read(path, kind=None):
    """Read a safetensors file; returns ``(tensors, metadata)``.

    With ``kind``, the file must be a fastnn file of that kind (with a checksum,
    which is verified).  Without it any safetensors file is accepted (e.g. one
    written by PyTorch); a fastnn checksum, when present, is still verified.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, an empty, truncated or corrupted file, another format, or a
        fastnn file of another kind; the message names the file.
    """
    spath = os.fspath(path)
    if not os.path.exists(spath):
        raise FileNotFoundError(f"no such file: {spath!r}")
    if os.path.isdir(spath):
        raise ValueError(f"{spath!r} is a directory; expected a safetensors file")
    with open(spath, "rb") as f:
        data = f.read()
    if len(data) == 0:
        raise _bad(path, "the file is empty (0 bytes)")
    if len(data) < 8:
        raise _bad(path, f"the file has only {len(data)} bytes (a safetensors file starts with an 8-byte header size)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER:
        raise _bad(path, f"header size {n} is not plausible (another file format?)")
    if 8 + n > len(data):
        raise _bad(path, f"the header needs {n} bytes but the file has {len(data) - 8} after the size "
                         f"(truncated?)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(path, "the header is not valid JSON (another file format, or corrupted)") from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "the header's __metadata__ is not a str -> str mapping")
    if kind is not None:
        got = metadata.get(KIND_KEY)
        if got is None:
            raise _bad(path, f"expected a fastnn {kind} file (written by fastnn.io), but the file has no "
                             f"'{KIND_KEY}' metadata (a plain safetensors file?)")
        if got != kind:
            raise ValueError(f"{spath!r} is a fastnn {got} file; expected a {kind} file")
        if CHECKSUM_KEY not in metadata:
            raise _bad(path, "the fastnn checksum is missing")
    stn = _safetensors_numpy()
    try:
        tensors = stn.load(data)
    except Exception as e:  # safetensors raises its own SafetensorError (and others) for bad bytes
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    want = metadata.get(CHECKSUM_KEY)
    if want is not None and checksum(tensors, metadata) != want:
        raise ValueError(f"{spath!r} is corrupted: its checksum does not match the contents "
                         f"(a changed or damaged file); refusing to load it")
    return tensors, metadata


def dumps(obj):
    """JSON text for the metadata (NaN and inf allowed, as Python's json writes them)."""
    return json.dumps(obj, sort_keys=False, separators=(",", ":"))


def loads(text, path, key):
    try:
        return json.loads(text)
    except ValueError:
        raise _bad(path, f"the metadata entry {key!r} is not valid JSON") from None
