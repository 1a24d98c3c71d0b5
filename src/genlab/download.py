"""The one way genlab fetches a file: data sets and network weights alike.

A download streams into a temporary file next to its target, is checked against the
publisher's checksum when one is known, and only then renamed into place, so that an
interrupted or corrupt download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from genlab.errors import DownloadError

_CHUNK = 1 << 20  # bytes per read


def download(
    url: str, path: str | Path, *, md5: str | None = None, sha256: str | None = None, timeout_s: float = 30
) -> Path:
    """Fetch ``url`` into ``path`` atomically, verified by ``md5`` and/or ``sha256`` (hex) when given.

    ``timeout_s`` bounds each network read, so a silent network fails instead of hanging.
    Returns ``path``. Raises :class:`~genlab.errors.DownloadError` (a DataError) when the
    URL cannot be read (offline, refused, timed out, HTTP error) or a checksum differs;
    nothing is left at ``path`` or beside it then.
    """
    path = Path(path)
    expected = {name: value.lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}
    digests = {name: hashlib.new(name) for name in expected}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
                while chunk := response.read(_CHUNK):
                    for digest in digests.values():
                        digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        # URLError and timeouts are OSErrors; a malformed URL is a ValueError.
        except (OSError, ValueError, http.client.HTTPException) as err:
            raise DownloadError(f"could not download {url} ({type(err).__name__}: {err})") from None
        for name, want in expected.items():
            got = digests[name].hexdigest()
            if got != want:
                raise DownloadError(
                    f"the file downloaded from {url} has {name} {got}, not the expected {want} "
                    f"(a changed file or a proxy's error page); it was not kept"
                )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
