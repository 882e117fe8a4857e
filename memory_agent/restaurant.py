"""The restaurant as configuration: its name, time zone, opening hours, closures and holidays, the
kitchen's preparation time, the staff's phone number and the menu; and when it is open (pure)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from memory_agent.menu import Menu, load_menu
from memory_agent.settings import known_time_zone

if TYPE_CHECKING:
    import holidays as holiday_calendars

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far ahead the next opening is looked for: a restaurant closed longer than this is closed.
LOOKAHEAD_DAYS = 60

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class RestaurantError(ValueError):
    """The restaurant file is missing or wrong; the message has one line per mistake."""


class Hours(BaseModel):
    """One opening of a day, as ``"18:00-23:30"``; an end at or before the start is on the next day."""

    model_config = ConfigDict(frozen=True)

    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _RANGE.match(value)
        if match is None:
            raise ValueError(f'{value!r} is not a range of hours such as "11:30-14:30"')
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{value!r} holds a time that does not exist")
        if (h1, m1) == (h2 % 24, m2):
            raise ValueError(f"{value!r} opens and closes at the same time")
        return {"start": time(h1, m1), "end": time(h2 % 24, m2)}

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class PublicHolidays(BaseModel):
    """Closed on the public holidays of a country (and region), as the ``holidays`` library knows them."""

    model_config = ConfigDict(frozen=True)

    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None

    @model_validator(mode="after")
    def _known(self) -> PublicHolidays:
        import holidays as holiday_calendars  # only for a restaurant that closes on them: a large import

        try:
            holiday_calendars.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError:
            raise ValueError(f"the holidays library has no country {self.country!r}") from None
        except Exception as exc:  # noqa: BLE001  (the library names the bad subdivision)
            raise ValueError(str(exc).splitlines()[0]) from None
        return self


class Restaurant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    # What the agents call it ("a friendly Italian restaurant"); none: "a friendly restaurant".
    cuisine: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[\w' -]+$")
    timezone: str = "UTC"
    # Missing: open at all times (the restaurant does not say when it closes).
    hours: dict[Weekday, tuple[Hours, ...]] | None = None
    closures: tuple[date, ...] = ()
    holidays: PublicHolidays | None = None
    # Minutes from placing an order to its being ready, with no other order waiting; and what each
    # order the kitchen still has adds.
    prep_minutes: int = Field(default=20, ge=1, le=240)
    minutes_per_queued_order: int = Field(default=5, ge=0, le=60)
    # Where transfer_to_staff sends a caller (E.164); none: the agent takes a message instead.
    staff_phone: str | None = None
    menu: Menu

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return known_time_zone(value)

    @field_validator("staff_phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValueError(f"{value!r} is not a phone number in international form (such as +14155550100)")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @model_validator(mode="before")
    @classmethod
    def _menu_named_after_the_restaurant(cls, data: Any) -> Any:
        # The agents speak the restaurant's name, whatever a shared menu file says.
        if isinstance(data, dict) and isinstance(name := data.get("name"), str):
            menu = data.get("menu")
            if isinstance(menu, dict):
                data = {**data, "menu": {**menu, "restaurant": name}}
            elif isinstance(menu, Menu):
                data = {**data, "menu": menu.model_copy(update={"restaurant": name})}
        return data

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _holiday_calendar(self) -> holiday_calendars.HolidayBase | None:
        if self.holidays is None:
            return None
        import holidays as holiday_calendars

        return holiday_calendars.country_holidays(self.holidays.country, subdiv=self.holidays.subdivision)

    @classmethod
    def always_open(cls, menu: Menu, *, timezone: str = "UTC") -> Restaurant:
        """A restaurant with no hours: the menu's, open whenever called."""
        return cls(name=menu.restaurant, timezone=timezone, menu=menu)

    # -- when it is open -----------------------------------------------------------------------

    def closed_on(self, day: date) -> str | None:
        """Why the restaurant is closed all of a local day (a closure, a public holiday), or None."""
        if day in self.closures:
            return "closed that day"
        if self._holiday_calendar is not None and (holiday := self._holiday_calendar.get(day)) is not None:
            return f"closed for {holiday}"
        return None

    def openings(self, start: date, days: int) -> Iterator[Opening]:
        """The openings that begin on the local days from ``start`` on, in order (UTC bounds)."""
        for offset in range(days):
            day = start + timedelta(days=offset)
            if self.hours is None or self.closed_on(day):
                continue
            for hours in sorted(self.hours.get(WEEKDAYS[day.weekday()], ()), key=lambda h: h.start):
                end_day = day + timedelta(days=1) if hours.crosses_midnight else day
                yield Opening(
                    start=datetime.combine(day, hours.start, self.zone).astimezone(UTC),
                    end=datetime.combine(end_day, hours.end, self.zone).astimezone(UTC),
                )

    def opening_at(self, moment: datetime) -> Opening | None:
        """The opening ``moment`` falls in, or None when closed then."""
        if self.hours is None:
            return Opening(start=moment - timedelta(days=1), end=moment + timedelta(days=LOOKAHEAD_DAYS))
        local_day = moment.astimezone(self.zone).date()
        for opening in self.openings(local_day - timedelta(days=1), 2):
            if opening.start <= moment < opening.end:
                return opening
        return None

    def is_open(self, moment: datetime) -> bool:
        return self.opening_at(moment) is not None

    def next_opening(self, moment: datetime) -> Opening | None:
        """The first opening that begins after ``moment``; None if none within ``LOOKAHEAD_DAYS``."""
        if self.hours is None:
            return None
        local_day = moment.astimezone(self.zone).date()
        return next((o for o in self.openings(local_day, LOOKAHEAD_DAYS) if o.start > moment), None)

    def pickup_window(self, now: datetime) -> Opening | None:
        """When an order taken at ``now`` can be collected: from the kitchen's preparation time on, to the
        end of the current opening, or else within the next opening; None when there is none."""
        prep = timedelta(minutes=self.prep_minutes)
        opening = self.opening_at(now)
        if opening is not None and now + prep < opening.end:
            return Opening(start=now + prep, end=opening.end)
        following = self.next_opening(now)
        if following is None:
            return None
        return Opening(start=following.start + prep, end=following.end)

    # -- in the caller's words -----------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def spoken(self, moment: datetime, *, now: datetime | None = None) -> str:
        """A moment as the caller hears it, in the restaurant's time: "7:30 PM today", "11:30 AM on Friday"."""
        local = self.local(moment)
        clock = f"{local:%I:%M %p}".lstrip("0")
        if now is None:
            return f"{clock} on {local:%A %-d %B}"
        days = (local.date() - self.local(now).date()).days
        if days == 0:
            return f"{clock} today"
        if days == 1:
            return f"{clock} tomorrow"
        return f"{clock} on {local:%A %-d %B}"

    def week_text(self) -> str:
        """The weekly hours, one short line, for the agents' instructions."""
        if self.hours is None:
            return "open at all times"
        days = [f"{day.title()} {', '.join(str(h) for h in self.hours.get(day, ())) or 'closed'}" for day in WEEKDAYS]
        return "; ".join(days)


@dataclass(frozen=True)
class Opening:
    """A span the restaurant is open for, in UTC."""

    start: datetime
    end: datetime

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment <= self.end


# -- loading ---------------------------------------------------------------------------------------

PACKAGED = "restaurant.toml"


@lru_cache(maxsize=8)
def load_restaurant(path: Path | None = None, *, timezone: str | None = None) -> Restaurant:
    """Load and validate a restaurant file (the packaged Bella Vista by default).

    ``menu`` is a table (the menu inline, as in a menu file) or a path to a menu file, relative to
    the restaurant file. ``timezone`` (``MEMORY_AGENT_TIMEZONE``) is the time zone of a file that names
    none (else UTC); a file that names another one is refused, so the restaurant has one time zone.
    Every mistake is one line of the ``RestaurantError``. Read once per process."""
    where = str(path) if path is not None else f"memory_agent/{PACKAGED}"
    try:
        if path is None:
            raw = resources.files("memory_agent").joinpath(PACKAGED).read_text(encoding="utf-8")
        else:
            raw = path.read_text(encoding="utf-8")
        data = tomllib.loads(raw)
    except OSError as exc:
        raise RestaurantError(f"{where}: cannot read it ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RestaurantError(f"{where}: not valid TOML ({exc})") from None
    named = data.get("timezone")
    if timezone is not None and isinstance(named, str) and named.strip() != timezone:
        raise RestaurantError(
            f"{where}: timezone: the file says {named!r} but MEMORY_AGENT_TIMEZONE says {timezone!r}:"
            " keep the one in the file and unset the variable"
        )
    data.setdefault("timezone", timezone or "UTC")
    if isinstance(data.get("menu"), str):
        menu_path = data["menu"]
        try:
            if path is None:
                data["menu"] = load_menu(None if menu_path == "menu.toml" else Path(menu_path))
            else:
                data["menu"] = load_menu((path.parent / menu_path).resolve())
        except OSError as exc:
            raise RestaurantError(f"{where}: menu: cannot read {menu_path} ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RestaurantError(f"{where}: menu: {menu_path} is not valid TOML ({exc})") from None
        except ValidationError as exc:
            raise RestaurantError(_lines(f"{where}: menu {menu_path}", exc)) from None
    try:
        return Restaurant.model_validate(data)
    except ValidationError as exc:
        raise RestaurantError(_lines(where, exc)) from None


def _lines(where: str, exc: ValidationError) -> str:
    lines = []
    errors = exc.errors()
    for error in errors:
        loc = error["loc"]
        if error["type"] == "too_short" and any(e["loc"][: len(loc)] == loc and e["loc"] != loc for e in errors):
            continue  # a list whose only item failed is too short as well; the item's own error says it all
        at = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("function-", "tagged-")))
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {at}: {message}" if at else f"{where}: {message}")
    return "\n".join(lines)
