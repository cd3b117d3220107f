"""Where manual overrides live: an in-memory store and the default file store (``ports.OverrideStore``).

Every change is a read-modify-write of one pool's records done atomically by the store (a file lock
here, check-and-set in the Nomad Variables store), so concurrent CLI writers never lose an update.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from autoscaler.core.errors import OverrideError
from autoscaler.core.ports import OverrideStore
from overrides.manual import PoolRecords

T = TypeVar("T")
FORMAT = "forescale-overrides/1"


class MemoryStore(OverrideStore[PoolRecords]):
    """Overrides in a dict: the demo and unit tests."""

    location = "memory"

    def __init__(self) -> None:
        self._pools: dict[str, PoolRecords] = {}
        self._writes = 0

    def version(self, after: Hashable | None = None, wait_s: float = 0.0) -> Hashable | None:
        return self._writes

    def read(self, pools: Sequence[str]) -> dict[str, PoolRecords]:
        return {p: self._pools.get(p, PoolRecords()).model_copy(deep=True) for p in pools}

    def modify(self, pool: str, fn: Callable[[PoolRecords], T]) -> T:
        records = self._pools.get(pool, PoolRecords()).model_copy(deep=True)
        out = fn(records)
        self._pools[pool] = records
        self._writes += 1
        return out


class FileStore(OverrideStore[PoolRecords]):
    """One JSON file, replaced atomically (tmp + fsync + rename) under an ``fcntl`` lock on a sibling file.

    Readers never lock: a rename is atomic, so they see the old or the new file, never a torn one.
    A file that is not valid JSON (or not our format) raises OverrideError naming it and is never
    overwritten. Every write also refreshes ``<path>.last-good``, the copy a tick falls back to.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.last_good_path = self.path.with_name(self.path.name + ".last-good")

    def read(self, pools: Sequence[str]) -> dict[str, PoolRecords]:
        data = self._load(self.path)
        return {p: data.get(p, PoolRecords()) for p in pools}

    def version(self, after: Hashable | None = None, wait_s: float = 0.0) -> Hashable | None:
        """The file's identity and mtime (an atomic replace changes both); ``stat`` only, cheap to poll."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return ("absent",)
        except OSError as exc:
            raise OverrideError(f"cannot read the override store {self.path}: {exc.strerror}") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read_last_good(self, pools: Sequence[str]) -> tuple[dict[str, PoolRecords], str] | None:
        """The last content forescale itself wrote and its path, or None."""
        if not self.last_good_path.exists():
            return None
        try:
            data = self._load(self.last_good_path)
        except OverrideError:
            return None
        return {p: data.get(p, PoolRecords()) for p in pools}, str(self.last_good_path)

    def modify(self, pool: str, fn: Callable[[PoolRecords], T]) -> T:
        with self._locked():
            data = self._load(self.path)
            records = data.get(pool, PoolRecords())
            before = records.model_dump(mode="json")
            out = fn(records)
            if records.model_dump(mode="json") != before:
                data[pool] = records
                self._write(data)
            return out

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o660)
        except OSError as exc:
            raise OverrideError(f"cannot open the lock file {self.lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _load(self, path: Path) -> dict[str, PoolRecords]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise OverrideError(f"cannot read the override store {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise self._broken(path, "not UTF-8 text") from None
        if not text.strip():
            raise self._broken(path, "the file is empty")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._broken(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
        except RecursionError:
            raise self._broken(path, "nested too deeply to be an override store") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("pools"), dict):
            raise self._broken(path, f"not a forescale override store (expected {{'format': '{FORMAT}', 'pools': …}})")
        out: dict[str, PoolRecords] = {}
        for pool, value in raw["pools"].items():
            try:
                out[pool] = PoolRecords.model_validate(value)
            except RecursionError:
                raise self._broken(path, f"pools.{pool}: nested too deeply") from None
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ".".join(str(p) for p in ("pools", pool, *err["loc"]))
                raise self._broken(path, f"{key}: {err['msg']}") from None
        return out

    def _broken(self, path: Path, what: str) -> OverrideError:
        hint = f"; or restore the last version forescale wrote: cp {self.last_good_path} {self.path}"
        restore = hint if path == self.path and self.last_good_path.exists() else ""
        return OverrideError(
            f"override store {path} is unreadable: {what}. forescale will not overwrite it: fix it by hand{restore}"
        )

    def _write(self, data: dict[str, PoolRecords]) -> None:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "pools": {
                p: r.model_dump(mode="json", exclude_none=True) for p, r in sorted(data.items()) if not r.empty()
            },
        }
        text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
        for target in (self.path, self.last_good_path):
            _atomic_write(target, text)


def _atomic_write(path: Path, text: str) -> None:
    mode = 0o640
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
