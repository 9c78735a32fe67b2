"""Reading and writing user files without tracebacks, data loss or half-written output.

Every writer of the project goes through :func:`atomic_write` (a file appears whole or not at
all) or :func:`staged_dir` (a folder is built beside its target and renamed into place, and
only a folder of the same kind is ever replaced). Readers of JSON go through :func:`read_json`,
which bounds size and nesting so that a hostile file is one line of error, not a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import UsageError

MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 32


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def read_json(path: str | Path, what: str):
    """Parse a JSON file of at most 16 MiB and nesting depth 32; ``what`` names it in errors."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UsageError(f"{what}: {path} is a directory, not a file")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UsageError(f"{what}: {path} is larger than {MAX_JSON_BYTES >> 20} MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what}: {path}: no such file") from None
    except OSError as e:
        raise UsageError(f"{what}: {path}: {_reason(e)}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what}: {path}: not UTF-8 text") from None
    return parse_json(text, what)


def parse_json(text: str, what: str):
    """:func:`json.loads` with the limits of :func:`read_json`, errors as one line."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise UsageError(f"{what}: JSON nested too deeply") from None
    except ValueError as e:    # JSONDecodeError, and integers beyond Python's digit limit
        raise UsageError(f"{what}: not valid JSON ({e})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise UsageError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                todo.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def check_output_file(path: str | Path, flag: str) -> Path:
    """Refuse, before any long work, an output file that cannot be written: its folder is
    missing or read-only, or the path is a folder."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path}: not writable")
    return path


def atomic_write(path: str | Path, data: str | bytes, flag: str | None = None, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``: a crash,
    full disk or Ctrl-C leaves the old file (or none), never a partial one."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_file(path, flag, mode) as tmp, open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_file(path: str | Path, flag: str | None = None, mode: int = 0o644) -> Iterator[Path]:
    """For writers that need a file name (``torch.save``, ``np.savez``): yields a temporary
    path beside ``path``, renamed over ``path`` (with ``mode`` less the umask) only when the
    block succeeds."""
    path = Path(path)
    name = flag or str(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        os.close(fd)
    except OSError as e:
        raise UsageError(f"{name}: cannot write {path}: {_reason(e)}") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        raise UsageError(f"{name}: cannot write {path}: {_reason(e)}") from None
    except BaseException:
        _unlink(tmp)
        raise


def check_replaceable_dir(path: str | Path, flag: str, is_kind: Callable[[Path], bool], kind: str) -> Path:
    """Refuse a target folder that exists and is not a ``kind`` (as ``is_kind`` tells), or an
    existing file: only what the user asked to replace is ever replaced."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UsageError(f"{flag} {path}: exists and is not a folder; refusing to replace it")
    if path.is_dir() and any(path.iterdir()) and not is_kind(path):
        raise UsageError(f"{flag} {path}: exists and is not a {kind}; refusing to replace it")
    parent = path.parent
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {parent} is not writable")
    return path


@contextlib.contextmanager
def staged_dir(path: str | Path, flag: str, is_kind: Callable[[Path], bool], kind: str) -> Iterator[Path]:
    """Build a folder in a temporary sibling and, when the block succeeds, put it in place of
    ``path`` (which must be absent, empty or a ``kind``). Any failure removes the sibling."""
    path = check_replaceable_dir(path, flag, is_kind, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise UsageError(f"{flag} {path}: {_reason(e)}") from None
    try:
        yield tmp
        check_replaceable_dir(path, flag, is_kind, kind)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"{flag} {path}: {_reason(e)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped, so a name from a
    file can never forge or erase a line of output."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _unlink(p) -> None:
    with contextlib.suppress(OSError):
        os.unlink(p)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
