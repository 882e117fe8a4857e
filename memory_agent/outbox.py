"""Delivering placed orders from the outbox to the till: a signed webhook and Square.

The delivery worker runs in the LiveKit worker's long-lived process and as ``memory-agent outbox
run``. Each round it gives newly queued orders a delivery per configured destination, claims the
deliveries that are due and delivers each one, retrying with exponential backoff (``tenacity``):
every attempt is written to the database first, so a restarted worker takes up where the last one
stopped, and a destination always gets the order's idempotency key (a repeat changes nothing there).
A delivery is dead after ``attempts`` failures, or at once on a failure no retry can mend (the
destination refused the order as invalid, or the credentials).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from db.clock import to_iso, utcnow
from db.schema.models import Delivery, DeliveryStatus

if TYPE_CHECKING:
    from db.outbox import OutboxStore
    from memory_agent.settings import Settings

log = logging.getLogger("memory_agent.outbox")

REQUEST_TIMEOUT_S = 15.0
POLL_S = 0.5
BATCH = 20
# Statuses worth another try: the request timed out, too many at once, or the destination's own trouble.
_TRANSIENT_STATUS = frozenset({408, 425, 429})


class OutboxConfigError(ValueError):
    """A destination is configured wrongly; the message is one line naming the setting."""


class TransientFailure(Exception):
    """The destination could not take the order now; another attempt may succeed."""


class PermanentFailure(Exception):
    """The destination refused the order for good (invalid, or not allowed); no retry would help."""


def failure_for_status(status: int, what: str) -> Exception:
    """The failure an HTTP status means: the destination's own trouble is worth retrying, a refusal is not."""
    if status >= 500 or status in _TRANSIENT_STATUS:
        return TransientFailure(f"{what} answered HTTP {status}")
    return PermanentFailure(f"{what} refused the order: HTTP {status}")


class Destination(Protocol):
    name: str

    async def deliver(self, key: str, order: dict[str, Any]) -> None:
        """Deliver ``order`` under idempotency ``key``; raise TransientFailure or PermanentFailure."""
        ...


class WebhookDestination:
    """A POST of the order as JSON, signed by the Standard Webhooks scheme; ``webhook-id`` is the order's key."""

    name = "webhook"

    def __init__(self, url: str, secret: str, *, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        from standardwebhooks import Webhook

        self.url = url
        self.signer = Webhook(secret)
        self.timeout_s = timeout_s

    async def deliver(self, key: str, order: dict[str, Any]) -> None:
        sent_at = datetime.now(UTC)
        body = json.dumps({"type": "order.placed", "timestamp": to_iso(sent_at), "data": order})
        headers = {
            "content-type": "application/json",
            "webhook-id": key,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self.signer.sign(key, sent_at, body),
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            raise TransientFailure(f"webhook unreachable: {type(exc).__name__}") from None
        if not response.is_success:
            raise failure_for_status(response.status_code, "webhook")


class SquareDestination:
    """The order created at the configured Square location, with its key as Square's idempotency key."""

    name = "square"

    def __init__(
        self,
        token: str,
        location_id: str,
        *,
        base_url: str,
        currency: str = "USD",
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        from square import AsyncSquare

        self.location_id = location_id
        self.currency = currency
        self.client = AsyncSquare(token=token, base_url=base_url, timeout=timeout_s)

    async def deliver(self, key: str, order: dict[str, Any]) -> None:
        from square.core.api_error import ApiError

        try:
            await self.client.orders.create(
                order=square_order(order, self.location_id, self.currency),
                idempotency_key=key,
                request_options={"max_retries": 0},  # the outbox retries, with its own record
            )
        except ApiError as exc:
            raise failure_for_status(exc.status_code or 500, "Square") from None
        except httpx.HTTPError as exc:
            raise TransientFailure(f"Square unreachable: {type(exc).__name__}") from None


def square_order(order: dict[str, Any], location_id: str, currency: str) -> dict[str, Any]:
    """Square's order for ours: the lines with their modifications as notes, the tip as a service charge,
    the payment method in the metadata, a pickup for the caller's first name with the kitchen's note."""

    def money(cents: int) -> dict[str, Any]:
        return {"amount": cents, "currency": currency}

    pickup: dict[str, Any] = {"recipient": {"display_name": order.get("caller_first_name") or "Phone order"}}
    if order.get("pickup_at"):
        pickup.update(schedule_type="SCHEDULED", pickup_at=order["pickup_at"])
    else:
        pickup.update(schedule_type="ASAP")
    if order.get("kitchen_note"):
        pickup["note"] = str(order["kitchen_note"])[:500]
    built: dict[str, Any] = {
        "location_id": location_id,
        "reference_id": str(order["id"]),
        "source": {"name": "Phone order"},
        "line_items": [
            {
                "name": item["name"],
                "quantity": str(item["quantity"]),
                "base_price_money": money(item["unit_price_cents"]),
                **({"note": ", ".join(item["modifications"])[:2000]} if item["modifications"] else {}),
            }
            for item in order["items"]
        ],
        "fulfillments": [{"type": "PICKUP", "state": "PROPOSED", "pickup_details": pickup}],
        "metadata": {"payment_method": str(order.get("payment_method") or "unknown")},
    }
    if order.get("tip_cents"):
        built["service_charges"] = [
            {"name": "Tip", "amount_money": money(order["tip_cents"]), "calculation_phase": "TOTAL_PHASE"}
        ]
    return built


def configured_destinations(settings: Settings) -> dict[str, Destination]:
    """The destinations the settings configure, by name; OutboxConfigError names a missing or bad setting."""
    found: dict[str, Destination] = {}
    url = (settings.webhook_url or "").strip()
    secret = settings.value("MEMORY_AGENT_WEBHOOK_SECRET") or ""
    if url or secret:
        if not url.startswith(("http://", "https://")):
            raise OutboxConfigError("MEMORY_AGENT_WEBHOOK_URL must be an http:// or https:// URL")
        if not _is_webhook_secret(secret):
            raise OutboxConfigError("MEMORY_AGENT_WEBHOOK_SECRET must be whsec_ followed by base64 (24 bytes or more)")
        found["webhook"] = WebhookDestination(url, secret)
    token = settings.value("SQUARE_ACCESS_TOKEN") or ""
    location = (settings.square_location_id or "").strip()
    if token or location:
        if not token.strip():
            raise OutboxConfigError("set SQUARE_ACCESS_TOKEN to deliver orders to Square")
        if not location:
            raise OutboxConfigError("set SQUARE_LOCATION_ID (the Square location that takes the orders)")
        if not settings.square_base_url.startswith(("http://", "https://")):
            raise OutboxConfigError("SQUARE_BASE_URL must be an http:// or https:// URL")
        found["square"] = SquareDestination(
            token.strip(), location, base_url=settings.square_base_url, currency=settings.square_currency
        )
    return found


def _is_webhook_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
    except (binascii.Error, ValueError):
        return False


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 12
    backoff_s: float = 2.0
    max_backoff_s: float = 600.0
    lease_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.outbox_attempts,
            backoff_s=settings.outbox_backoff_s,
            max_backoff_s=settings.outbox_max_backoff_s,
            lease_s=settings.outbox_lease_s,
        )


class DeliveryWorker:
    """Delivers the outbox's orders to ``destinations`` until stopped; ``run_once`` is one round."""

    def __init__(
        self,
        store: OutboxStore,
        destinations: Mapping[str, Destination],
        policy: RetryPolicy,
        *,
        poll_s: float = POLL_S,
    ) -> None:
        self.store = store
        self.destinations = dict(destinations)
        self.policy = policy
        self.poll_s = poll_s
        self._running: dict[int, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    await self.run_once()
                except Exception as exc:  # noqa: BLE001  (the database refused: the next round tries again)
                    log.warning("outbox round failed: %s", type(exc).__name__)
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except TimeoutError:
                    pass
        finally:
            for task in self._running.values():
                task.cancel()  # their claims run out, and the next worker delivers them
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def run_once(self) -> None:
        """Give new orders their deliveries, then start delivering the due ones not already in hand."""
        now = utcnow()
        await self.store.dispatch(sorted(self.destinations), to_iso(now))
        lease = to_iso(now + timedelta(seconds=self.policy.lease_s))
        for delivery in await self.store.claim(to_iso(now), lease, BATCH):
            if delivery.id in self._running:
                continue
            task = asyncio.create_task(self.deliver(delivery), name=f"delivery-{delivery.id}")
            self._running[delivery.id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._running = {key: running for key, running in self._running.items() if running is not task}

    async def idle(self) -> None:
        """Wait for the deliveries in hand to end (tests, and a graceful stop)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def deliver(self, delivery: Delivery) -> None:
        """Attempt ``delivery`` until it is delivered, dead, or due again after a longer wait than the lease."""
        destination = self.destinations.get(delivery.destination)
        if destination is None:  # configured when the order was queued, not any more: it waits
            return
        order = await self.store.order_document(delivery.order_id)
        if order is None:  # erased since
            await self._record(delivery, "dead", "the order no longer exists")
            return
        remaining = max(1, self.policy.attempts - delivery.attempts)

        async def before_sleep(state: RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0.0
            error = str(state.outcome.exception()) if state.outcome else "failed"
            due = utcnow() + timedelta(seconds=wait + self.policy.lease_s)
            await self._record(delivery, "pending", error, next_attempt_at=to_iso(due))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(remaining),
            wait=wait_exponential(multiplier=self.policy.backoff_s, max=self.policy.max_backoff_s),
            retry=retry_if_exception_type(TransientFailure),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await destination.deliver(delivery.idempotency_key, order)
        except (TransientFailure, PermanentFailure) as exc:
            await self._record(delivery, "dead", str(exc))
            log.warning("order %s: delivery to %s failed for good: %s", delivery.order_id, delivery.destination, exc)
            return
        await self._record(delivery, "delivered", None)
        log.info("order %s delivered to %s", delivery.order_id, delivery.destination)

    async def _record(
        self, delivery: Delivery, status: DeliveryStatus, error: str | None, next_attempt_at: str | None = None
    ) -> None:
        await self.store.record(delivery.id, status, error=error, next_attempt_at=next_attempt_at, now=to_iso(utcnow()))


async def run_delivery_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Deliver the database's outbox to the configured destinations until ``stop`` is set (or cancelled)."""
    from db.open import open_outbox

    destinations = configured_destinations(settings)
    if not destinations:
        return
    async with open_outbox(settings.db) as store:
        await DeliveryWorker(store, destinations, RetryPolicy.from_settings(settings)).run(stop)


_background: set[asyncio.Task[None]] = set()


def deliver_in_background(settings: Settings) -> None:
    """In a long-lived process's running loop: the delivery worker, as a task, if a destination is configured."""
    try:
        if not configured_destinations(settings):
            return
    except OutboxConfigError as exc:
        log.error("orders are not delivered: %s", exc)
        return
    task = asyncio.create_task(run_delivery_worker(settings), name="outbox")
    _background.add(task)
    task.add_done_callback(_background.discard)
