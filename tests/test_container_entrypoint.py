"""The image's entrypoint, run as it runs in a container (no image build here): a data folder on any volume."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "docker-entrypoint.sh"
AGENT = 10001
OTHER = 10002  # a user that is neither root nor the agent, as Kubernetes' runAsUser can be
ROOT = os.geteuid() == 0


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder every user can reach (pytest's own are private to the user running it), with the script."""
    path = Path(tempfile.mkdtemp(prefix="entrypoint-"))
    path.chmod(0o755)
    shutil.copy(SCRIPT, path / "entrypoint.sh")
    (path / "entrypoint.sh").chmod(0o755)
    yield path
    shutil.rmtree(path)


def entrypoint(base: Path, data: Path, *command: str, as_user: int | None = None) -> subprocess.CompletedProcess[str]:
    drop = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"] if as_user is not None else []
    return subprocess.run(
        [*drop, str(base / "entrypoint.sh"), *command],
        env={"PATH": os.environ["PATH"], "MEMORY_AGENT_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_started_as_root_it_gives_a_root_owned_volume_to_the_agent_and_runs_as_the_agent(base):
    data = base / "data"
    data.mkdir(mode=0o755)
    (data / "memory.db").write_bytes(b"x")
    (data / "memory.db").chmod(0o600)
    result = entrypoint(base, data, "sh", "-c", 'id -u; echo more >> "$0/memory.db"', str(data))

    if not ROOT:  # not root here: the script cannot change owners, and says so in one line
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and "not writable" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(AGENT)]
    assert {p.stat().st_uid for p in (data, data / "memory.db")} == {AGENT}
    assert (data / "memory.db").read_bytes() == b"xmore\n"
    assert (data / "memory.db").stat().st_mode & 0o777 == 0o600  # ownership changes, permissions stay


def test_a_folder_it_cannot_write_is_one_clear_line_and_a_failing_exit(base):
    data = base / "data"
    data.mkdir(mode=0o555)
    user = OTHER if ROOT else None  # root writes anywhere: run it as a user that cannot
    result = entrypoint(base, data, "echo", "started", as_user=user)

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"memory-agent: error: {data} is not writable by uid")
    assert "fsGroup" in lines[0]


def test_started_as_another_user_with_a_writable_folder_it_runs_the_command(base):
    data = base / "data"
    data.mkdir(mode=0o755)
    user = OTHER if ROOT else None
    if user is not None:
        os.chown(data, OTHER, OTHER)
    result = entrypoint(base, data, "sh", "-c", "id -u", as_user=user)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(user if user is not None else os.geteuid())]
    assert list(data.iterdir()) == []  # the write test leaves nothing behind


def test_the_image_runs_the_worker_through_the_entrypoint():
    dockerfile = (SCRIPT.parent / "Dockerfile").read_text()

    assert 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' in dockerfile
    assert "COPY docker-entrypoint.sh /usr/local/bin/" in dockerfile
    assert "\nUSER " not in dockerfile  # the entrypoint drops to the agent's uid itself
