"""Fetch Microsoft's public PetImages archive (the Kaggle cats and dogs), resumably, and verify it.

The file is written to ``NAME.part`` and renamed only once its size, SHA-256 and zip layout check out. An
interrupted download resumes with an HTTP ``Range`` request (a server that answers 200 instead of 206 makes
it start again from zero). Being offline is a one-line UserError that says how to get the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from catsdogs import __version__
from catsdogs.config import user_cache_dir
from catsdogs.errors import UserError, parameter

PETIMAGES_URL = ("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
                 "kagglecatsanddogs_5340.zip")
# Microsoft publishes no checksum for this archive; this SHA-256 is the one the gomlx project pins for it.
PETIMAGES_SHA256 = "b7974bd00a84a99921f36ee4403f089853777b5ae8d151c76a86e64900334af9"
PETIMAGES_MIN_PER_CLASS = 12_000  # the real archive has 12,500 files per class (a few unusable)
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Interrupted(Exception):
    """The transfer stopped part-way; the .part file holds what arrived and can be resumed."""


def default_download_dir() -> Path:
    """``$CATSDOGS_CACHE`` if set, else ``~/.cache/catsdogs``."""
    return user_cache_dir()


def _offline(url: str, reason: object) -> UserError:
    return UserError(f"could not download {url} ({reason}); download it in a browser and pass it with "
                     f"{parameter('source', 'PATH')}")


def _file_name(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name
    return name or "download.zip"


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> int | None:
    """One HTTP request that appends to (206) or restarts (200) ``part``; returns the full size if known."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"catsdogs-data_prep/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the .part is complete (the checksum will tell)
            return None
        raise _offline(url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _offline(url, getattr(exc, "reason", None) or exc) from None
    with response:
        length = response.headers.get("Content-Length")
        total = None
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()  # a range we did not ask for: start again cleanly
                raise _Interrupted(f"server sent an unexpected range {response.headers.get('Content-Range')!r}")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:  # 200: the server ignored Range (or there was none), so this is the whole file from zero
            offset, mode = 0, "wb"
        if total is None and length is not None:
            total = offset + int(length)
        received = offset
        with open(part, mode) as handle, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=part.name[:-5], file=sys.stderr,
                                              disable=None if progress else True) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
        if total is not None and received < total:  # http.client returns b"" on an early close
            raise _Interrupted(f"connection closed after {received:,} of {total:,} bytes")
    return total


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def check_petimages_archive(path: Path, min_per_class: int = 0) -> dict[str, int]:
    """Open ``path`` as a zip and check the ``PetImages/Cat|Dog`` layout (and a minimum of .jpg files per class).

    Returns the number of .jpg files per class folder; raises UserError when the archive is not usable.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable zip archive ({exc}); delete it and download again") from None
    per_class = {folder: sum(1 for n in names if n.startswith(f"PetImages/{folder}/") and n.lower().endswith(".jpg"))
                 for folder in ("Cat", "Dog")}
    if min(per_class.values()) == 0:
        raise UserError(f"{path} does not hold PetImages/Cat and PetImages/Dog; it is not the PetImages archive")
    if min(per_class.values()) < min_per_class:
        raise UserError(f"{path} holds only {per_class['Cat']} cat and {per_class['Dog']} dog images (expected at "
                        f"least {min_per_class} each); delete it and download again")
    return per_class


def download_file(url: str, directory: Path, sha256: str | None, *, attempts: int = 3, timeout: float = 30.0,
                  retry_wait: float = 2.0, progress: bool = False, min_per_class: int = 0) -> Path:
    """Download ``url`` into ``directory`` (resuming a previous ``.part``), verify it and return its path.

    Checks: the size against Content-Length, the SHA-256 against ``sha256`` (None skips it), then the
    PetImages layout. A file already downloaded is verified again and reused without any network access.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _file_name(url)
    part = final.with_name(final.name + ".part")
    expected = sha256.lower() if sha256 else None
    if final.exists():
        if expected and sha256_of(final) != expected:
            raise UserError(f"{final} (downloaded earlier) does not match SHA-256 {expected}; delete it and run again")
        check_petimages_archive(final, min_per_class)
        return final
    total = None
    for attempt in range(1, attempts + 1):
        try:
            total = _fetch_once(url, part, timeout, progress)
            break
        except _Interrupted as exc:
            if attempt == attempts:
                have = part.stat().st_size if part.exists() else 0
                raise UserError(f"download of {url} was interrupted ({exc}) with {have:,} bytes in {part}; run the "
                                "same command again to resume, or download it in a browser and pass it with "
                                f"{parameter('source', 'PATH')}") from None
            time.sleep(retry_wait)
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise UserError(f"{url} gave {size:,} bytes but announced {total:,}; deleted {part.name}, run again")
    if expected:
        actual = sha256_of(part)
        if actual != expected:
            part.unlink()
            raise UserError(f"checksum mismatch for {url}: SHA-256 {actual}, expected {expected}; deleted the "
                            f"download ({part.name}); run again, or pass {parameter('sha256')} if the file "
                            "legitimately changed")
    try:
        check_petimages_archive(part, min_per_class)
    except UserError:
        part.unlink()
        raise
    os.replace(part, final)
    return final


def download_petimages(url: str = PETIMAGES_URL, directory: str | Path | None = None,
                       sha256: str | None = PETIMAGES_SHA256, *, progress: bool = False, attempts: int = 3,
                       timeout: float = 30.0, retry_wait: float = 2.0) -> Path:
    """The PetImages zip, downloaded (or found) in ``directory`` (default: :func:`default_download_dir`).

    The 12,000-files-per-class check applies to Microsoft's URL only; other URLs (mirrors, tests) are
    checked for the layout.
    """
    min_per_class = PETIMAGES_MIN_PER_CLASS if url == PETIMAGES_URL else 0
    return download_file(url, Path(directory) if directory else default_download_dir(), sha256,
                         progress=progress, min_per_class=min_per_class, attempts=attempts, timeout=timeout,
                         retry_wait=retry_wait)
