"""The schema's history before Alembic: SQLite's migrations 1 to 11 and PostgreSQL's 1 to 7, frozen.

Revision 0011 applies what a database lacks of them, recording each in ``schema_migrations`` as
before; a database made by an earlier version upgrades in place from whichever it reached. Never
edited: every later change is an Alembic revision of its own, one for both databases.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from db.clock import utcnow_iso


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


# -- SQLite ------------------------------------------------------------------------------------

_SQLITE_USUAL_ORDER = """(
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

_SQLITE_INITIAL = """
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
_SQLITE_INSPECTION = """
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
_SQLITE_CALL_OWNER = """
ALTER TABLE calls ADD COLUMN owner_host TEXT;
ALTER TABLE calls ADD COLUMN owner_pid INTEGER;
ALTER TABLE calls ADD COLUMN owner_started TEXT;
"""

# Version 4: a caller's open calls are found without visiting every call they ever made.
_SQLITE_OPEN_CALLS_OF_CALLER = """
CREATE INDEX ix_calls_open_customer ON calls(customer_id) WHERE ended_at IS NULL;
"""

# Version 5: households (several people on one number) and the audit trail of erasures.
_SQLITE_HOUSEHOLDS = """
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
# on a line; and each caller's usual order (kept by the end-of-call write, see db.sqlite.calls). Its
# views are the same text on both backends (db.postgres.migrate uses them too).
_CALLER_FACT_VIEWS = """DROP VIEW order_lines;
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

_SQLITE_CALLER_FACTS = f"""
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
UPDATE customers SET usual_order_id = {_SQLITE_USUAL_ORDER} WHERE last_order_id IS NOT NULL;

"""

# Version 7: erasure wins over calls in flight. Each call records the number (or identity) it came from,
# so an erasure of a number reaches its calls where no name was given; each erasure records its scope
# (``number``: everything on it; ``profile``: one person), which the end-of-call write, every checkpoint
# and the spool's replay read before writing (``db.statements.calls.ERASED_SINCE`` today). Erasures recorded before
# count as the whole number's: of a doubt, the erasure wins.
_SQLITE_ERASURE_WINS = """
ALTER TABLE calls ADD COLUMN caller_number TEXT;
UPDATE calls SET caller_number = (SELECT household FROM customers WHERE customers.id = calls.customer_id);
CREATE INDEX ix_calls_caller_number ON calls(caller_number);
ALTER TABLE erasures ADD COLUMN scope TEXT NOT NULL DEFAULT 'number' CHECK (scope IN ('number', 'profile'));
CREATE INDEX ix_erasures_subject ON erasures(subject);
"""


# Version 8: names tried on a number that matched none of its profiles (guessing is bounded), for the
# owner. Nothing personal: a keyed hash of the number (as in ``erasures``), never the name said.
_SQLITE_IDENTITY_ATTEMPTS = """
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
# The same text on both backends (db.postgres.migrate uses it too, with its own types).
_OUTBOX_AND_KITCHEN = """
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
_CALL_OUTCOME_VALUES = (
    "order_placed",
    "order_for_later",
    "transferred",
    "message_taken",
    "no_order",
    "hung_up",
    "erased",
)
_OUTCOMES = ", ".join(f"'{value}'" for value in _CALL_OUTCOME_VALUES)
_SQLITE_CALL_OUTCOMES = f"""
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


# Version 11: what each call used of the paid providers (db.schema.models.CallUsage), for its cost.
_CALL_USAGE = """
ALTER TABLE calls ADD COLUMN llm_requests {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_cancelled {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_cut {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_prompt_tokens {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_cached_tokens {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN llm_completion_tokens {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN stt_audio_ms {BIGINT} NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN tts_characters {BIGINT} NOT NULL DEFAULT 0;
"""

SQLITE: tuple[Migration, ...] = (
    Migration(1, "initial schema", _SQLITE_INITIAL),
    Migration(2, "inspection: customer label, views, full-text search", _SQLITE_INSPECTION),
    Migration(3, "call owner", _SQLITE_CALL_OWNER),
    Migration(4, "index of a caller's open calls", _SQLITE_OPEN_CALLS_OF_CALLER),
    Migration(5, "households and erasures", _SQLITE_HOUSEHOLDS),
    Migration(6, "caller facts, kitchen notes, usual orders", _SQLITE_CALLER_FACTS + _CALLER_FACT_VIEWS),
    Migration(7, "calls' numbers and erasures' scopes", _SQLITE_ERASURE_WINS),
    Migration(8, "identity attempts", _SQLITE_IDENTITY_ATTEMPTS),
    Migration(9, "call outcomes, ready times, messages for the staff", _SQLITE_CALL_OUTCOMES),
    Migration(
        10,
        "outbox and deliveries, kitchen tickets, sold-out dishes",
        _OUTBOX_AND_KITCHEN.format(ID="INTEGER PRIMARY KEY", BIGINT="INTEGER", TEXT="TEXT"),
    ),
    Migration(11, "calls' usage of the paid providers", _CALL_USAGE.format(BIGINT="INTEGER")),
)

# -- PostgreSQL --------------------------------------------------------------------------------

_TEXT = 'text COLLATE "C"'
_ID = "bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
_MESSAGES_SEARCH = "to_tsvector('english', content)"
_FEEDBACK_SEARCH = "to_tsvector('english', comment)"

_PG_USUAL_ORDER = """(
WITH recent AS (
    SELECT o.id, o.created_at,
           (SELECT string_agg(dish, '|' ORDER BY dish) FROM (
                SELECT menu_item || '*' || quantity || '*' || modifications AS dish
                FROM order_items WHERE order_id = o.id) AS d) AS dishes
    FROM orders AS o
    WHERE o.customer_id = customers.id AND o.status = 'placed'
    ORDER BY o.created_at DESC, o.id DESC LIMIT 10)
SELECT id FROM recent
WHERE dishes = (SELECT dishes FROM recent GROUP BY dishes ORDER BY count(*) DESC, max(created_at) DESC LIMIT 1)
ORDER BY created_at DESC, id DESC LIMIT 1)"""

_LABEL = (
    "CASE WHEN name IS NULL OR name = '' THEN participant_identity ELSE name || ' (' || participant_identity || ')' END"
)

# SQLite's versions 1 to 5 at once (no PostgreSQL database predates them).
_PG_INITIAL = f"""
CREATE TABLE customers (
    id {_ID},
    participant_identity {_TEXT} NOT NULL UNIQUE,
    name {_TEXT},
    email {_TEXT},
    created_at {_TEXT} NOT NULL,
    last_seen_at {_TEXT} NOT NULL,
    call_count bigint NOT NULL DEFAULT 0,
    order_count bigint NOT NULL DEFAULT 0,
    lifetime_spend_cents bigint NOT NULL DEFAULT 0,
    last_order_id bigint,
    last_rating bigint CHECK (last_rating BETWEEN 1 AND 5),
    last_feedback_comment {_TEXT},
    label {_TEXT} GENERATED ALWAYS AS ({_LABEL}) STORED,
    household {_TEXT}
);
CREATE INDEX ix_customers_last_order_id ON customers(last_order_id);
CREATE INDEX ix_customers_household ON customers(household);

CREATE TABLE calls (
    id {_TEXT} PRIMARY KEY,
    customer_id bigint REFERENCES customers(id),
    caller_name {_TEXT},
    started_at {_TEXT} NOT NULL,
    ended_at {_TEXT},
    end_reason {_TEXT},
    owner_host {_TEXT},
    owner_pid bigint,
    owner_started {_TEXT}
);
CREATE INDEX ix_calls_customer_id ON calls(customer_id);
CREATE INDEX ix_calls_open ON calls(started_at) WHERE ended_at IS NULL;
CREATE INDEX ix_calls_open_customer ON calls(customer_id) WHERE ended_at IS NULL;

CREATE TABLE orders (
    id {_ID},
    call_id {_TEXT} NOT NULL UNIQUE REFERENCES calls(id),
    customer_id bigint REFERENCES customers(id),
    status {_TEXT} NOT NULL CHECK (status IN ('in_progress', 'placed', 'abandoned')),
    subtotal_cents bigint NOT NULL CHECK (subtotal_cents >= 0),
    tip_cents bigint NOT NULL DEFAULT 0 CHECK (tip_cents >= 0),
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    payment_method {_TEXT},
    created_at {_TEXT} NOT NULL,
    updated_at {_TEXT} NOT NULL,
    placed_at {_TEXT}
);
CREATE INDEX ix_orders_customer_id ON orders(customer_id, created_at);
CREATE INDEX ix_orders_created_at ON orders(created_at);
ALTER TABLE customers ADD FOREIGN KEY (last_order_id) REFERENCES orders(id);

CREATE TABLE order_items (
    id {_ID},
    order_id bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    position bigint NOT NULL,
    menu_item {_TEXT} NOT NULL,
    name {_TEXT} NOT NULL,
    quantity bigint NOT NULL CHECK (quantity BETWEEN 1 AND 20),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    modifications {_TEXT} NOT NULL DEFAULT '[]' CHECK (modifications::json IS NOT NULL),
    UNIQUE (order_id, position)
);

CREATE TABLE feedback (
    id {_ID},
    call_id {_TEXT} NOT NULL UNIQUE REFERENCES calls(id),
    customer_id bigint REFERENCES customers(id),
    rating bigint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment {_TEXT} NOT NULL DEFAULT '',
    created_at {_TEXT} NOT NULL
);
CREATE INDEX ix_feedback_customer_id ON feedback(customer_id);
CREATE INDEX ix_feedback_search ON feedback USING gin ({_FEEDBACK_SEARCH});

CREATE TABLE messages (
    id {_ID},
    call_id {_TEXT} NOT NULL REFERENCES calls(id),
    seq bigint NOT NULL,
    role {_TEXT} NOT NULL,
    agent {_TEXT},
    content {_TEXT} NOT NULL,
    created_at {_TEXT} NOT NULL,
    UNIQUE (call_id, seq)
);
CREATE INDEX ix_messages_search ON messages USING gin ({_MESSAGES_SEARCH});

CREATE TABLE erasures (
    id {_ID},
    erased_at {_TEXT} NOT NULL,
    subject {_TEXT} NOT NULL,
    counts {_TEXT} NOT NULL CHECK (counts::json IS NOT NULL)
);

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
       (SELECT coalesce(sum(o.total_cents), 0)::bigint FROM orders AS o
         WHERE o.customer_id = c.id AND o.status = 'placed') AS spend_cents,
       (SELECT round(avg(f.rating), 2)::float8 FROM feedback AS f WHERE f.customer_id = c.id) AS average_rating,
       c.created_at AS first_seen_at, c.last_seen_at
FROM customers AS c;

CREATE VIEW daily_sales AS
SELECT substr(coalesce(placed_at, created_at), 1, 10) AS day,
       count(*) AS orders,
       sum((SELECT sum(quantity) FROM order_items WHERE order_id = o.id))::bigint AS items,
       sum(subtotal_cents)::bigint AS subtotal_cents,
       sum(tip_cents)::bigint AS tip_cents,
       sum(total_cents)::bigint AS total_cents,
       round(avg(total_cents))::bigint AS average_order_cents
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

-- PostgreSQL only: the worker processes' heartbeats, so any host can tell a dead one's calls.
CREATE TABLE worker_hosts (
    host {_TEXT} NOT NULL,
    pid bigint NOT NULL,
    started {_TEXT} NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, pid, started)
);
"""

# SQLite's version 6: caller facts, kitchen notes, usual orders.
_PG_CALLER_FACTS = f"""
CREATE TABLE caller_facts (
    id {_ID},
    customer_id bigint NOT NULL REFERENCES customers(id),
    call_id {_TEXT} NOT NULL REFERENCES calls(id),
    kind {_TEXT} NOT NULL CHECK (kind IN ('allergy', 'preference')),
    topic {_TEXT} NOT NULL,
    value {_TEXT},
    stated_at {_TEXT} NOT NULL,
    superseded_at {_TEXT},
    UNIQUE (call_id, kind, topic)
);
CREATE INDEX ix_caller_facts_current ON caller_facts(customer_id, kind, topic) WHERE superseded_at IS NULL;

ALTER TABLE orders ADD COLUMN kitchen_note {_TEXT};
ALTER TABLE order_items ADD COLUMN accepted_allergens {_TEXT} NOT NULL DEFAULT '[]'
    CHECK (accepted_allergens::json IS NOT NULL);
ALTER TABLE customers ADD COLUMN usual_order_id bigint REFERENCES orders(id);
CREATE INDEX ix_customers_usual_order_id ON customers(usual_order_id);
UPDATE customers SET usual_order_id = {_PG_USUAL_ORDER} WHERE last_order_id IS NOT NULL;

"""

# SQLite's version 7: calls' numbers and erasures' scopes (see db.sqlite.migrate._PG_ERASURE_WINS).
_PG_ERASURE_WINS = f"""
ALTER TABLE calls ADD COLUMN caller_number {_TEXT};
UPDATE calls SET caller_number = (SELECT household FROM customers WHERE customers.id = calls.customer_id);
CREATE INDEX ix_calls_caller_number ON calls(caller_number);
ALTER TABLE erasures ADD COLUMN scope {_TEXT} NOT NULL DEFAULT 'number' CHECK (scope IN ('number', 'profile'));
CREATE INDEX ix_erasures_subject ON erasures(subject);
"""


# SQLite's version 8: names tried on a number that matched none of its profiles.
_PG_IDENTITY_ATTEMPTS = f"""
CREATE TABLE identity_attempts (
    id {_ID},
    attempted_at {_TEXT} NOT NULL,
    subject {_TEXT} NOT NULL,
    call_id {_TEXT} NOT NULL,
    outcome {_TEXT} NOT NULL CHECK (outcome IN ('wrong_name', 'refused'))
);
CREATE INDEX ix_identity_attempts_subject ON identity_attempts(subject, attempted_at);
"""


# SQLite's version 9: call outcomes, ready times, messages for the staff.
_PG_CALL_OUTCOMES = f"""
ALTER TABLE calls ADD COLUMN outcome {_TEXT} CHECK (outcome IN ({_OUTCOMES}));
ALTER TABLE calls ADD COLUMN restaurant_open bigint CHECK (restaurant_open IN (0, 1));
ALTER TABLE calls ADD COLUMN transfer_reason {_TEXT};
ALTER TABLE calls ADD COLUMN transfer_status {_TEXT}
    CHECK (transfer_status IN ('transferred', 'failed', 'unavailable'));
ALTER TABLE orders ADD COLUMN ready_at {_TEXT};
CREATE INDEX ix_calls_started_at ON calls(started_at);
CREATE INDEX ix_orders_ready_at ON orders(ready_at);

CREATE TABLE staff_messages (
    id {_ID},
    call_id {_TEXT} NOT NULL REFERENCES calls(id),
    customer_id bigint REFERENCES customers(id),
    position bigint NOT NULL,
    request {_TEXT} NOT NULL,
    callback_number {_TEXT},
    reason {_TEXT} NOT NULL,
    created_at {_TEXT} NOT NULL,
    UNIQUE (call_id, position)
);
CREATE INDEX ix_staff_messages_created_at ON staff_messages(created_at);
CREATE INDEX ix_staff_messages_customer_id ON staff_messages(customer_id);
"""


POSTGRES: tuple[Migration, ...] = (
    Migration(1, "schema of SQLite's version 5, full-text search, worker heartbeats", _PG_INITIAL),
    Migration(2, "caller facts, kitchen notes, usual orders", _PG_CALLER_FACTS + _CALLER_FACT_VIEWS),
    Migration(3, "calls' numbers and erasures' scopes", _PG_ERASURE_WINS),
    Migration(4, "identity attempts", _PG_IDENTITY_ATTEMPTS),
    Migration(5, "call outcomes, ready times, messages for the staff", _PG_CALL_OUTCOMES),
    # SQLite's version 10.
    Migration(
        6,
        "outbox and deliveries, kitchen tickets, sold-out dishes",
        _OUTBOX_AND_KITCHEN.format(ID=_ID, BIGINT="bigint", TEXT=_TEXT),
    ),
    # SQLite's version 11.
    Migration(7, "calls' usage of the paid providers", _CALL_USAGE.format(BIGINT="bigint")),
)


_SQLITE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""
_PG_BOOKKEEPING = f"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version bigint PRIMARY KEY,
    name {_TEXT} NOT NULL,
    applied_at {_TEXT} NOT NULL
)
"""

Execute = Callable[[str, Sequence[Any]], Any]


def apply_sqlite(execute: Execute, applied: set[int], *, target: int = SQLITE[-1].version) -> None:
    """SQLite's migrations up to ``target`` that ``applied`` lacks, in the caller's transaction."""
    execute(_SQLITE_BOOKKEEPING, ())
    for migration in SQLITE:
        if migration.version > target:
            break
        if migration.version in applied:
            continue
        for statement in _statements(migration.sql):
            execute(statement, ())
        execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, utcnow_iso()),
        )


def apply_postgres(execute: Execute, applied: set[int], *, target: int = POSTGRES[-1].version) -> None:
    """PostgreSQL's migrations up to ``target`` that ``applied`` lacks, in the caller's transaction."""
    execute(_PG_BOOKKEEPING, ())
    for migration in POSTGRES:
        if migration.version > target:
            break
        if migration.version in applied:
            continue
        execute(migration.sql, ())
        execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.name, utcnow_iso()),
        )


def sqlite_file_at(conn: sqlite3.Connection, version: int) -> None:
    """Make the empty database on ``conn`` a memory-agent file of the old schema ``version`` (for tests)."""
    conn.execute("PRAGMA application_id = 0x4D454D41")
    apply_sqlite(conn.execute, set(), target=version)


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
