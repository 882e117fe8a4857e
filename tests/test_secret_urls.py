"""A PostgreSQL URL's secrets, in every form libpq reads them, never reach the screen."""

from __future__ import annotations

import socket

import pytest
from psycopg import conninfo

from db.safe_url import redact_url, scrub
from db.sqlite.connection import prepare
from memory_agent.cli import main

# "Wr+ongPw" as a caller would write it: "+" and "/" need percent-encoding in a URL.
SECRET = "Wr+ong/Pw"
FORMS = ("Wr+ong/Pw", "Wr%2Bong%2FPw", "Wr%2bong%2fPw", "Wr ong/Pw", "Wr+ong")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORT = _closed_port()
URLS = {
    "userinfo": f"postgresql://maria:Wr%2Bong%2FPw@127.0.0.1:{PORT}/orders",
    "query": f"postgresql://maria@127.0.0.1:{PORT}/orders?password=Wr+ong/Pw",
    "query, percent-encoded": f"postgresql://maria@127.0.0.1:{PORT}/orders?password=Wr%2Bong%2FPw",
    "query, encoded key": f"postgresql://maria@127.0.0.1:{PORT}/orders?pass%77ord=Wr%2Bong%2FPw",
    "sslpassword": f"postgresql://maria@127.0.0.1:{PORT}/orders?sslmode=disable&sslpassword=Wr%2Bong%2FPw",
    "an unencoded / in the password": f"postgresql://maria:Wr+ong/Pw@127.0.0.1:{PORT}/orders",
    "postgres scheme, bad port": "postgres://maria:Wr%2Bong%2FPw@127.0.0.1:port/orders",
    "a mistyped scheme": f"postgresq://maria:Wr%2Bong%2FPw@127.0.0.1:{PORT}/orders",
}


@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_a_shown_url_keeps_where_it_points_and_loses_every_secret_libpq_reads(url):
    shown = redact_url(url)

    for form in FORMS:
        assert form not in shown
    assert "maria" in shown and "127.0.0.1" in shown and "orders" in shown
    if url.startswith("postgresql://"):  # what the driver itself reads as secrets is hidden too
        secrets = {k: v for k, v in conninfo.conninfo_to_dict(url).items() if k in ("password", "sslpassword")}
        assert all(value not in shown for value in secrets.values())
        assert all(value == "***" for k, value in conninfo.conninfo_to_dict(shown).items() if k in secrets)


def test_an_error_quoting_the_secret_in_any_form_is_scrubbed():
    url = URLS["query"]
    said = "server said: Wr+ong/Pw, Wr%2Bong%2FPw, Wr%2Bong%2FPw, Wr ong/Pw"

    assert scrub(said, url) == "server said: ***, ***, ***, ***"


@pytest.fixture
def sqlite_file(tmp_path):
    path = tmp_path / "memory.db"
    prepare(str(path), 1000)
    return path


COMMANDS = {
    "export": lambda url, src: ["export", "--db", url],
    "export -o": lambda url, src: ["export", "--db", url, "-o", str(src.with_name("out.csv"))],
    "migrate-to-postgres": lambda url, src: ["migrate-to-postgres", str(src), url],
    "forget": lambda url, src: ["forget", "+14155550134", "--db", url],
    "forget --dry-run": lambda url, src: ["forget", "+14155550134", "--dry-run", "--db", url],
    "export-caller": lambda url, src: ["export-caller", "+14155550134", "--db", url],
    "purge": lambda url, src: ["purge", "--db", url],
    "chat": lambda url, src: ["chat", "--identity", "maria", "--db", url],
    "backup": lambda url, src: ["backup", str(src.with_name("copy.db")), "--db", url],
    "inspect": lambda url, src: ["inspect", "--db", url],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_every_command_fails_in_one_line_without_the_secret(command, url, sqlite_file, capsys, monkeypatch):
    monkeypatch.chdir(sqlite_file.parent)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # chat reaches the database

    code = main(command(url, sqlite_file))

    out, err = capsys.readouterr()
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for form in FORMS:
        assert form not in out + err, form
