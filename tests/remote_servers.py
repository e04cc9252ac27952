"""Real storage servers on localhost for the remote tests (tests/test_remote.py), each started in a
temporary folder and stopped when its `with` block ends, and a check of what a DVC remote holds.

- moto_s3: moto's S3-compatible server (`python -m moto.server`, its own process), what DVC's own
  dvc-s3 tests use; fake credentials.
- sshd: Debian's OpenSSH server (`/usr/sbin/sshd -D -f CONFIG`) on a free port, with a host key and
  one authorized client key made for the test, as the current user.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from catsdogs.pipeline.processes import die_with_parent

SSHD = Path("/usr/sbin/sshd")
# DVC 3 stores a file as files/md5/<2 hex>/<30 hex> and a directory listing as .../<30 hex>.dir;
# either way the md5 of the stored bytes is the 32 hex digits of its name.
OBJECT = re.compile(r"files/md5/([0-9a-f]{2})/([0-9a-f]{30})(\.dir)?")
TEMPORARY = re.compile(r"files/md5/(?:[0-9a-f]{2}/)?\.[^/]+\.tmp")
S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    """Return once `port` accepts connections; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s:\n{log.read_text()}")


@contextmanager
def _server(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # The kernel kills the server if pytest dies, even by kill -9 (the stages' workers do the same).
            preexec_fn=partial(die_with_parent, os.getpid()),
        )
    try:
        _wait_for_port(port, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def moto_s3(folder: Path) -> Iterator[str]:
    """moto's S3 server on a free port; yields its endpoint URL (credentials: S3_CREDENTIALS)."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _server(command, port, folder / "moto.log"):
        yield f"http://127.0.0.1:{port}"


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["access_key_id"],
        aws_secret_access_key=S3_CREDENTIALS["secret_access_key"],
    )


@contextmanager
def sshd(folder: Path) -> Iterator[dict]:
    """An OpenSSH server on 127.0.0.1 and a free port, for the current user with a new key pair.

    Yields {"port", "user", "keyfile" (the client's private key), "known_hosts" (a known_hosts line
    for the server's host key)}. Needs Debian's openssh-server (/usr/sbin/sshd).
    """
    if not SSHD.exists():
        raise RuntimeError(f"{SSHD} not found: install Debian's openssh-server (apt-get install openssh-server)")
    if os.geteuid() == 0:
        # As root, sshd wants its privilege separation folder (systemd's ssh.service makes it).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nAuthenticationMethods publickey\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        # The temporary folder is under /tmp (world-writable), which StrictModes would refuse.
        "StrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
    )
    command = [str(SSHD), "-D", "-e", "-f", str(folder / "sshd_config")]
    with _server(command, port, folder / "sshd.log"):
        host_key = (folder / "host_key.pub").read_text().split()[:2]
        yield {
            "port": port,
            "user": getpass.getuser(),
            "keyfile": str(folder / "client_key"),
            "known_hosts": f"[127.0.0.1]:{port} {' '.join(host_key)}\n",
        }


def folder_objects(root: Path) -> dict[str, bytes]:
    """{path relative to root: bytes} of every file under a remote's folder."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def bucket_keys(client, bucket: str, prefix: str) -> list[str]:
    """Every key under s3://bucket/prefix/."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def bucket_objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    """{key relative to prefix: bytes} of every object under s3://bucket/prefix/."""
    return {
        key[len(prefix) + 1 :]: client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in bucket_keys(client, bucket, prefix)
    }


def check_objects(stored: dict[str, bytes]) -> tuple[set[str], list[str]]:
    """Check a remote's files: (the md5 names of its objects, its leftover temporary files).

    Raises AssertionError naming every object whose bytes do not hash to its name (corrupt), and
    every file that is neither an object, a run-cache entry (runs/) nor one of the temporary files DVC
    uploads to and then renames (files/md5/xx/.NAME.tmp, left behind when a push is killed).
    """
    objects, temporary, corrupt, unknown = set(), [], [], []
    for path, data in stored.items():
        if match := OBJECT.fullmatch(path):
            name = match.group(1) + match.group(2)
            if hashlib.md5(data).hexdigest() == name:
                objects.add(name)
            else:
                corrupt.append(path)
        elif TEMPORARY.fullmatch(path):
            temporary.append(path)
        elif not path.startswith("runs/"):
            unknown.append(path)
    assert not corrupt, f"corrupt objects on the remote: {corrupt}"
    assert not unknown, f"unexpected files on the remote: {unknown}"
    return objects, sorted(temporary)
