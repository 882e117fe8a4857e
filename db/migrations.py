"""Versioned schema migrations: a short ordered list, each applied once in its own transaction.

Applied versions are recorded in ``schema_migrations``. A migration is never edited after it
ships; a change to the schema is a new entry at the end of ``MIGRATIONS``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from db.clock import utcnow_iso
from db.errors import NotADatabase, SchemaTooNew

# A customer's usual order: the most frequent of their last 10 placed orders (two orders are the
# same if they hold the same dishes in the same quantities with the same changes), the most recent
# of a tie; its newest instance. A scalar subquery over ``customers``: the end-of-call write and
# migration 6 both use it.
USUAL_ORDER_SQL = """(
WITH recent AS (
    SELECT o.id, o.created_at,
           (SELECT group_concat(dish, '|') FROM (
                SELECT menu_item || '*' || quantity || '*' || modifications AS dish
                FROM order_items WHERE order_id = o.id ORDER BY dish)) AS dishes
    FROM orders AS o
    WHERE o.customer_id = customers.id AND o.status = 'placed'
    ORDER BY o.created_at DESC, o.id DESC LIMIT 10)
SELECT id FROM recent
WHERE dishes = (SELECT dishes FROM recent GROUP BY dishes ORDER BY count(*) DESC, max(created_at) DESC LIMIT 1)
ORDER BY created_at DESC, id DESC LIMIT 1)"""

# PRAGMA application_id marks a file as this product's database ("MEMA").
APPLICATION_ID = 0x4D454D41
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_INITIAL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    participant_identity TEXT NOT NULL UNIQUE,
    name TEXT,
    email TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    call_count INTEGER NOT NULL DEFAULT 0,
    order_count INTEGER NOT NULL DEFAULT 0,
    lifetime_spend_cents INTEGER NOT NULL DEFAULT 0,
    last_order_id INTEGER REFERENCES orders(id),
    last_rating INTEGER CHECK (last_rating BETWEEN 1 AND 5),
    last_feedback_comment TEXT
);
CREATE INDEX ix_customers_last_order_id ON customers(last_order_id);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(id),
    caller_name TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    end_reason TEXT
);
CREATE INDEX ix_calls_customer_id ON calls(customer_id);
CREATE INDEX ix_calls_open ON calls(started_at) WHERE ended_at IS NULL;

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL UNIQUE REFERENCES calls(id),
    customer_id INTEGER REFERENCES customers(id),
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'placed', 'abandoned')),
    subtotal_cents INTEGER NOT NULL CHECK (subtotal_cents >= 0),
    tip_cents INTEGER NOT NULL DEFAULT 0 CHECK (tip_cents >= 0),
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
    payment_method TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    placed_at TEXT
);
CREATE INDEX ix_orders_customer_id ON orders(customer_id, created_at);
CREATE INDEX ix_orders_created_at ON orders(created_at);

CREATE TABLE order_items (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    menu_item TEXT NOT NULL,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 20),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    modifications TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(modifications)),
    UNIQUE (order_id, position)
);

CREATE TABLE feedback (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL UNIQUE REFERENCES calls(id),
    customer_id INTEGER REFERENCES customers(id),
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX ix_feedback_customer_id ON feedback(customer_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    agent TEXT,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (call_id, seq)
);
"""

# Datasette-ready: a label for customers, views for the common questions, and full-text search
# over what callers said and wrote. Every *_id column already declares its foreign key and leads
# an index in migration 1 (messages.call_id and order_items.order_id through their UNIQUE
# constraints), so no index is added: a duplicate would only slow the end-of-call write.
_INSPECTION = """
ALTER TABLE customers ADD COLUMN label TEXT GENERATED ALWAYS AS (
    CASE WHEN name IS NULL OR name = '' THEN participant_identity
         ELSE name || ' (' || participant_identity || ')' END
) VIRTUAL;

CREATE VIEW order_lines AS
SELECT i.id AS order_item_id, i.order_id, o.call_id, o.customer_id, c.label AS customer,
       o.status, o.created_at, i.position, i.menu_item, i.name, i.quantity, i.modifications,
       i.unit_price_cents, i.quantity * i.unit_price_cents AS line_total_cents
FROM order_items AS i
JOIN orders AS o ON o.id = i.order_id
LEFT JOIN customers AS c ON c.id = o.customer_id;

CREATE VIEW customer_summary AS
SELECT c.id AS customer_id, c.label AS customer, c.participant_identity, c.name, c.email,
       (SELECT count(*) FROM calls WHERE calls.customer_id = c.id) AS calls,
       (SELECT count(*) FROM orders AS o WHERE o.customer_id = c.id AND o.status = 'placed') AS orders,
       (SELECT coalesce(sum(o.total_cents), 0) FROM orders AS o
         WHERE o.customer_id = c.id AND o.status = 'placed') AS spend_cents,
       (SELECT round(avg(f.rating), 2) FROM feedback AS f WHERE f.customer_id = c.id) AS average_rating,
       c.created_at AS first_seen_at, c.last_seen_at
FROM customers AS c;

CREATE VIEW daily_sales AS
SELECT substr(coalesce(placed_at, created_at), 1, 10) AS day,
       count(*) AS orders,
       sum((SELECT sum(quantity) FROM order_items WHERE order_id = o.id)) AS items,
       sum(subtotal_cents) AS subtotal_cents,
       sum(tip_cents) AS tip_cents,
       sum(total_cents) AS total_cents,
       CAST(round(avg(total_cents)) AS INTEGER) AS average_order_cents
FROM orders AS o
WHERE status = 'placed'
GROUP BY day;

CREATE VIEW feedback_with_call AS
SELECT f.id AS feedback_id, f.created_at, f.rating, f.comment, f.call_id, f.customer_id,
       c.label AS customer, calls.caller_name, calls.started_at, calls.ended_at, calls.end_reason,
       o.id AS order_id, o.status AS order_status, o.total_cents AS order_total_cents,
       (SELECT count(*) FROM messages AS m WHERE m.call_id = f.call_id) AS messages
FROM feedback AS f
JOIN calls ON calls.id = f.call_id
LEFT JOIN customers AS c ON c.id = f.customer_id
LEFT JOIN orders AS o ON o.call_id = f.call_id;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content="messages", content_rowid="id", tokenize="porter unicode61 remove_diacritics 2"
);
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_au AFTER UPDATE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE feedback_fts USING fts5(
    comment, content="feedback", content_rowid="id", tokenize="porter unicode61 remove_diacritics 2"
);
CREATE TRIGGER feedback_ai AFTER INSERT ON feedback BEGIN
    INSERT INTO feedback_fts (rowid, comment) VALUES (new.id, new.comment);
END;
CREATE TRIGGER feedback_ad AFTER DELETE ON feedback BEGIN
    INSERT INTO feedback_fts (feedback_fts, rowid, comment) VALUES ('delete', old.id, old.comment);
END;
CREATE TRIGGER feedback_au AFTER UPDATE ON feedback BEGIN
    INSERT INTO feedback_fts (feedback_fts, rowid, comment) VALUES ('delete', old.id, old.comment);
    INSERT INTO feedback_fts (rowid, comment) VALUES (new.id, new.comment);
END;
INSERT INTO feedback_fts (feedback_fts) VALUES ('rebuild');
"""

# Version 3: who runs each call, so a call left open by a dead process can be told from a live one.
_CALL_OWNER = """
ALTER TABLE calls ADD COLUMN owner_host TEXT;
ALTER TABLE calls ADD COLUMN owner_pid INTEGER;
ALTER TABLE calls ADD COLUMN owner_started TEXT;
"""

# Version 4: a caller's open calls are found without visiting every call they ever made.
_OPEN_CALLS_OF_CALLER = """
CREATE INDEX ix_calls_open_customer ON calls(customer_id) WHERE ended_at IS NULL;
"""

# Version 5: households (several people on one number) and the audit trail of erasures.
_HOUSEHOLDS = """
ALTER TABLE customers ADD COLUMN household TEXT;
UPDATE customers SET household = participant_identity;
CREATE INDEX ix_customers_household ON customers(household);

CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    erased_at TEXT NOT NULL,
    subject TEXT NOT NULL,
    counts TEXT NOT NULL CHECK (json_valid(counts))
);
"""

# Version 6: what callers tell us about themselves (allergies, preferences), each with the call
# it came from; the allergies a kitchen must know on each order, and the ones a caller accepted
# on a line; and each caller's usual order (kept by the end-of-call write, see db.calls). Its
# views are the same text on both backends (db.pg.schema uses them too).
CALLER_FACT_VIEWS = """DROP VIEW order_lines;
CREATE VIEW order_lines AS
SELECT i.id AS order_item_id, i.order_id, o.call_id, o.customer_id, c.label AS customer,
       o.status, o.created_at, i.position, i.menu_item, i.name, i.quantity, i.modifications,
       i.unit_price_cents, i.quantity * i.unit_price_cents AS line_total_cents,
       i.accepted_allergens, o.kitchen_note
FROM order_items AS i
JOIN orders AS o ON o.id = i.order_id
LEFT JOIN customers AS c ON c.id = o.customer_id;

CREATE VIEW allergy_roster AS
SELECT f.customer_id, c.label AS customer, f.topic AS allergen, f.value AS as_said,
       f.stated_at, f.call_id
FROM caller_facts AS f JOIN customers AS c ON c.id = f.customer_id
WHERE f.kind = 'allergy' AND f.superseded_at IS NULL AND f.value IS NOT NULL;

CREATE VIEW caller_preferences AS
SELECT f.customer_id, c.label AS customer, f.topic AS about, f.value AS preference,
       f.stated_at, f.call_id
FROM caller_facts AS f JOIN customers AS c ON c.id = f.customer_id
WHERE f.kind = 'preference' AND f.superseded_at IS NULL AND f.value IS NOT NULL;
"""

_CALLER_FACTS = f"""
CREATE TABLE caller_facts (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    call_id TEXT NOT NULL REFERENCES calls(id),
    kind TEXT NOT NULL CHECK (kind IN ('allergy', 'preference')),
    topic TEXT NOT NULL,
    value TEXT,
    stated_at TEXT NOT NULL,
    superseded_at TEXT,
    UNIQUE (call_id, kind, topic)
);
CREATE INDEX ix_caller_facts_current ON caller_facts(customer_id, kind, topic) WHERE superseded_at IS NULL;

ALTER TABLE orders ADD COLUMN kitchen_note TEXT;
ALTER TABLE order_items ADD COLUMN accepted_allergens TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(accepted_allergens));
ALTER TABLE customers ADD COLUMN usual_order_id INTEGER REFERENCES orders(id);
CREATE INDEX ix_customers_usual_order_id ON customers(usual_order_id);
UPDATE customers SET usual_order_id = {USUAL_ORDER_SQL} WHERE last_order_id IS NOT NULL;

"""

# Version 7: erasure wins over calls in flight. Each call records the number (or identity) it came from,
# so an erasure of a number reaches its calls where no name was given; each erasure records its scope
# (``number``: everything on it; ``profile``: one person), which the end-of-call write, every checkpoint
# and the spool's replay read before writing (``db.privacy.ERASED_SINCE_SQL``). Erasures recorded before
# count as the whole number's: of a doubt, the erasure wins.
_ERASURE_WINS = """
ALTER TABLE calls ADD COLUMN caller_number TEXT;
UPDATE calls SET caller_number = (SELECT household FROM customers WHERE customers.id = calls.customer_id);
CREATE INDEX ix_calls_caller_number ON calls(caller_number);
ALTER TABLE erasures ADD COLUMN scope TEXT NOT NULL DEFAULT 'number' CHECK (scope IN ('number', 'profile'));
CREATE INDEX ix_erasures_subject ON erasures(subject);
"""


# Version 8: names tried on a number that matched none of its profiles (guessing is bounded), for the
# owner. Nothing personal: a keyed hash of the number (as in ``erasures``), never the name said.
IDENTITY_ATTEMPTS = """
CREATE TABLE identity_attempts (
    id INTEGER PRIMARY KEY,
    attempted_at TEXT NOT NULL,
    subject TEXT NOT NULL,
    call_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('wrong_name', 'refused'))
);
CREATE INDEX ix_identity_attempts_subject ON identity_attempts(subject, attempted_at);
"""


# Version 10: the outbox (a placed order queued for delivery in the transaction that places it,
# then one delivery per destination with its retries and dead letters) and the kitchen board's
# record: each ticket's status changes and the dishes sold out for a day, with who and when.
# The same text on both backends (db.pg.schema uses it too, with its own types).
OUTBOX_AND_KITCHEN = """
CREATE TABLE outbox (
    id {ID},
    order_id {BIGINT} NOT NULL UNIQUE REFERENCES orders(id) ON DELETE CASCADE,
    idempotency_key {TEXT} NOT NULL UNIQUE,
    created_at {TEXT} NOT NULL,
    dispatched_at {TEXT}
);
CREATE INDEX ix_outbox_undispatched ON outbox(created_at) WHERE dispatched_at IS NULL;

CREATE TABLE deliveries (
    id {ID},
    outbox_id {BIGINT} NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    destination {TEXT} NOT NULL,
    status {TEXT} NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts {BIGINT} NOT NULL DEFAULT 0,
    next_attempt_at {TEXT} NOT NULL,
    last_error {TEXT},
    created_at {TEXT} NOT NULL,
    updated_at {TEXT} NOT NULL,
    delivered_at {TEXT},
    UNIQUE (outbox_id, destination)
);
CREATE INDEX ix_deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_deliveries_dead ON deliveries(updated_at) WHERE status = 'dead';

CREATE TABLE ticket_changes (
    id {ID},
    order_id {BIGINT} NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    status {TEXT} NOT NULL CHECK (status IN ('new', 'preparing', 'ready', 'collected')),
    changed_by {TEXT} NOT NULL,
    changed_at {TEXT} NOT NULL
);
CREATE INDEX ix_ticket_changes_order_id ON ticket_changes(order_id, id);

CREATE TABLE sold_out (
    id {ID},
    menu_item {TEXT} NOT NULL,
    day {TEXT} NOT NULL,
    marked_by {TEXT} NOT NULL,
    marked_at {TEXT} NOT NULL,
    UNIQUE (menu_item, day)
);
"""


# Version 9: how each call ended for the restaurant (an order, one for later, a transfer to staff, a
# message...), whether the restaurant was open when it began, the ready time promised with an order,
# and the messages callers left for the staff.
CALL_OUTCOME_VALUES = (
    "order_placed",
    "order_for_later",
    "transferred",
    "message_taken",
    "no_order",
    "hung_up",
    "erased",
)
_OUTCOMES = ", ".join(f"'{value}'" for value in CALL_OUTCOME_VALUES)
CALL_OUTCOMES_SQL = f"""
ALTER TABLE calls ADD COLUMN outcome TEXT CHECK (outcome IN ({_OUTCOMES}));
ALTER TABLE calls ADD COLUMN restaurant_open INTEGER CHECK (restaurant_open IN (0, 1));
ALTER TABLE calls ADD COLUMN transfer_reason TEXT;
ALTER TABLE calls ADD COLUMN transfer_status TEXT CHECK (transfer_status IN ('transferred', 'failed', 'unavailable'));
ALTER TABLE orders ADD COLUMN ready_at TEXT;
CREATE INDEX ix_calls_started_at ON calls(started_at);
CREATE INDEX ix_orders_ready_at ON orders(ready_at);

CREATE TABLE staff_messages (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    customer_id INTEGER REFERENCES customers(id),
    position INTEGER NOT NULL,
    request TEXT NOT NULL,
    callback_number TEXT,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (call_id, position)
);
CREATE INDEX ix_staff_messages_created_at ON staff_messages(created_at);
CREATE INDEX ix_staff_messages_customer_id ON staff_messages(customer_id);
"""


# Version 11: what each call used of the paid providers (db.models.CallUsage), for its cost.
CALL_USAGE_SQL = """
ALTER TABLE calls ADD COLUMN llm_requests {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_cancelled {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_cut {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_prompt_tokens {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_cached_tokens {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_completion_tokens {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN stt_audio_ms {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN tts_characters {BIGINT} NOT NULL DEFAULT 0;
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _INITIAL),
    Migration(2, "inspection: customer label, views, full-text search", _INSPECTION),
    Migration(3, "call owner", _CALL_OWNER),
    Migration(4, "index of a caller's open calls", _OPEN_CALLS_OF_CALLER),
    Migration(5, "households and erasures", _HOUSEHOLDS),
    Migration(6, "caller facts, kitchen notes, usual orders", _CALLER_FACTS + CALLER_FACT_VIEWS),
    Migration(7, "calls' numbers and erasures' scopes", _ERASURE_WINS),
    Migration(8, "identity attempts", IDENTITY_ATTEMPTS),
    Migration(9, "call outcomes, ready times, messages for the staff", CALL_OUTCOMES_SQL),
    Migration(
        10,
        "outbox and deliveries, kitchen tickets, sold-out dishes",
        OUTBOX_AND_KITCHEN.format(ID="INTEGER PRIMARY KEY", BIGINT="INTEGER", TEXT="TEXT"),
    ),
    Migration(11, "calls' usage of the paid providers", CALL_USAGE_SQL.format(BIGINT="INTEGER")),
)

LATEST_VERSION = MIGRATIONS[-1].version

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def refuse_foreign_file(path: Path) -> None:
    """Refuse a missing, foreign or non-SQLite file from its header, without opening it in SQLite."""
    if not path.exists():
        raise NotADatabase(f"database {path} does not exist")
    if not path.is_file():
        raise NotADatabase(f"database {path} is not a file")
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise NotADatabase(f"cannot read {path}: {exc.strerror}") from None
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise NotADatabase(f"{path} is not a SQLite database")
    app_id = int.from_bytes(header[68:72], "big")
    # A new database's first pages may still be in its WAL: then SQLite itself has to decide.
    wal = path.with_name(path.name + "-wal")
    pending = app_id == 0 and wal.is_file() and wal.stat().st_size > 0
    if app_id != APPLICATION_ID and not pending:
        raise NotADatabase(f"{path} is a SQLite database, but not a memory-agent database")


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for an empty file; refuses files that are not ours."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(f"not a SQLite database ({exc})") from None
    if app_id == 0 and not tables:
        return 0
    if app_id != APPLICATION_ID or "schema_migrations" not in tables:
        raise NotADatabase("a SQLite database, but not a memory-agent database")
    version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
    if version > LATEST_VERSION:
        raise SchemaTooNew(
            f"database schema version {version} is newer than this code supports "
            f"({LATEST_VERSION}); upgrade memory-agent"
        )
    return int(version)


def pending(conn: sqlite3.Connection) -> list[Migration]:
    """Migrations not yet applied to this file, by version: any missing one is applied, not only newer ones."""
    if schema_version(conn) == 0:
        return list(MIGRATIONS)
    applied = _applied_versions(conn)
    return [m for m in MIGRATIONS if m.version not in applied]


def migrate(conn: sqlite3.Connection, *, target: int = LATEST_VERSION) -> int:
    """Apply every pending migration up to ``target``, each in one IMMEDIATE transaction."""
    for migration in pending(conn):
        if migration.version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if migration.version in _applied_versions(conn):
                conn.execute("ROLLBACK")
                continue
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(_BOOKKEEPING)
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utcnow_iso()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return target


def _applied_versions(conn: sqlite3.Connection) -> set[int]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if not exists:
        return set()
    return {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (triggers contain semicolons)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
