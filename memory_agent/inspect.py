"""``memory-agent inspect``: browse the database in Datasette, read-only, with the shipped metadata.

The live file is served read-only (``mode=ro``), not ``--immutable``: immutable mode ignores the
WAL and would hide the calls the agent wrote since the last checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from db import RepositoryError
from db.reports import open_read_only

INSTALL_COMMAND = "pip install 'memory-agent[inspect]'"
METADATA_RESOURCE = "datasette/metadata.yml"
# The key the packaged metadata uses for the database; Datasette names it after the file.
_PACKAGED_NAME = "memory"


def datasette_installed() -> bool:
    return importlib.util.find_spec("datasette") is not None


def load_metadata(database_name: str = _PACKAGED_NAME) -> dict[str, Any]:
    """The packaged Datasette metadata, for a database served under ``database_name``."""
    import yaml  # comes with Datasette

    text = resources.files("memory_agent").joinpath(METADATA_RESOURCE).read_text(encoding="utf-8")
    metadata = yaml.safe_load(text)
    metadata["databases"] = {database_name: metadata["databases"][_PACKAGED_NAME]}
    return metadata


def datasette_command(
    db: Path, metadata_file: Path, *, host: str = "127.0.0.1", port: int = 8001, extra: Sequence[str] = ()
) -> list[str]:
    """The ``datasette serve`` command line: the live file, read-only, with the metadata."""
    return [
        sys.executable, "-m", "datasette", "serve", str(db),
        "--metadata", str(metadata_file), "--host", host, "--port", str(port),
        *extra,
    ]  # fmt: skip


def inspect_database(db: Path, *, host: str = "127.0.0.1", port: int = 8001, extra: Sequence[str] = ()) -> int:
    """Serve ``db`` in Datasette until interrupted; returns the exit status.

    Without Datasette it prints the command that installs it and returns 1; a file that is not
    a memory-agent database gets a one-line error and 1. ``extra`` goes to ``datasette serve``
    (``--open`` opens a browser, ``--get PATH`` prints one page and exits).
    """
    if not datasette_installed():
        print(f"memory-agent inspect needs Datasette; install it with: {INSTALL_COMMAND}", file=sys.stderr)
        return 1
    try:
        open_read_only(db).close()
    except RepositoryError as exc:
        print(f"memory-agent inspect: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="memory-agent-inspect-") as folder:
        metadata_file = Path(folder) / "metadata.json"
        metadata_file.write_text(json.dumps(load_metadata(Path(db).stem)), encoding="utf-8")
        if not extra:
            print(f"Serving {db} read-only at http://{host}:{port}/ (Ctrl+C to stop)", file=sys.stderr)
        try:
            return subprocess.run(datasette_command(db, metadata_file, host=host, port=port, extra=extra)).returncode
        except KeyboardInterrupt:
            return 0
