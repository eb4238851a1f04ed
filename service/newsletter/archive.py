"""The files of an import: a CSV as it is, or the CSV files inside a zip (Mailchimp's export
holds the subscribed, unsubscribed and cleaned files; Substack's holds its email list beside the
posts). A zip is read from the uploaded file without writing anything to disk, member by member,
and the unpacked bytes are capped: a zip bomb (declared or discovered while reading) stops the
import with an ImportFileError, so nothing is changed."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import IO

from service.newsletter.csvrows import ImportFileError

MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # far above a 100,000-row audience (about 30 MB)
MAX_MEMBERS = 10_000


def is_zip(binary: IO[bytes]) -> bool:
    """Whether the file starts like a zip (a CSV never does); the position is kept."""
    if not binary.seekable():
        return False
    start = binary.tell()
    magic = binary.read(4)
    binary.seek(start)
    return magic == b"PK\x03\x04"


class _Capped(io.RawIOBase):
    """A member's stream that refuses to give more than the bytes left under the cap."""

    def __init__(self, inner: IO[bytes], name: str, budget: list[int], cap: int) -> None:
        self._inner, self._name, self._budget, self._cap = inner, name, budget, cap

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ImportFileError(f"{self._name}: cannot be unpacked ({exc}); nothing was imported") from None
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise ImportFileError(f"{self._name}: the zip unpacks to more than {self._cap >> 20} MB "
                                  "(a zip bomb?); nothing was imported")
        buffer[: len(data)] = data
        return len(data)


def zip_members(binary: IO[bytes], *, cap: int = MAX_UNPACKED_BYTES) -> Iterator[tuple[str, IO[bytes]]]:
    """Each CSV member of the zip (name, capped stream), in the zip's order."""
    try:
        archive = zipfile.ZipFile(binary)
        infos = [i for i in archive.infolist()
                 if not i.is_dir() and i.filename.lower().endswith(".csv") and not i.filename.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(f"not a readable zip file ({exc}); nothing was imported") from None
    if len(infos) > MAX_MEMBERS:
        raise ImportFileError(f"the zip holds more than {MAX_MEMBERS} CSV files; nothing was imported")
    if sum(i.file_size for i in infos) > cap:
        raise ImportFileError(f"the zip unpacks to more than {cap >> 20} MB (a zip bomb?); nothing was imported")
    if not infos:
        raise ImportFileError("the zip holds no CSV file; nothing was imported")
    budget = [cap]
    with archive:
        for info in infos:
            try:
                inner = archive.open(info)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
                raise ImportFileError(f"{info.filename}: cannot be unpacked ({exc}); nothing was imported") from None
            with inner:
                yield info.filename, io.BufferedReader(_Capped(inner, info.filename, budget, cap))
