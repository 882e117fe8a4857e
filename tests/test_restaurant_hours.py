"""The restaurant as a file, its hours in its own time zone, ready times and orders for later."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from conftest import rows, scripted_call
from memory_agent.cli import main
from memory_agent.menu import load_menu
from memory_agent.restaurant import Restaurant, RestaurantError, load_restaurant
from memory_agent.scripted_llm import Say, ToolCall

MENU = Path(__file__).resolve().parent.parent / "memory_agent" / "menu.toml"
NEW_YORK = "America/New_York"
HOURS = {
    "mon": [],
    "tue": ["11:30-14:30", "17:00-22:00"],
    "wed": ["11:30-14:30", "17:00-22:00"],
    "thu": ["11:30-14:30", "17:00-22:00"],
    "fri": ["17:00-01:30"],  # on past midnight
    "sat": ["12:00-23:00"],
    "sun": ["12:00-21:00"],
}


class Clock:
    """The call's time, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def ny(*args: int) -> datetime:
    """A New York local time, as the aware UTC moment the code sees."""
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)  # type: ignore[misc]


def restaurant(**changes: object) -> Restaurant:
    config: dict[str, object] = {
        "name": "Trattoria Uno",
        "timezone": NEW_YORK,
        "hours": HOURS,
        "closures": [date(2026, 12, 31)],
        "holidays": {"country": "US"},
        "prep_minutes": 20,
        "minutes_per_queued_order": 5,
        "menu": load_menu(),
        **changes,
    }
    return Restaurant.model_validate(config)


# -- hours -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (ny(2026, 12, 8, 12, 0), True),  # Tuesday lunch
        (ny(2026, 12, 8, 15, 0), False),  # between lunch and dinner
        (ny(2026, 12, 7, 19, 0), False),  # Monday: closed all day
        (ny(2026, 12, 11, 23, 59), True),  # Friday night...
        (ny(2026, 12, 12, 1, 0), True),  # ...on past midnight, into Saturday
        (ny(2026, 12, 12, 1, 30), False),  # closing time is closed
        (ny(2026, 12, 25, 19, 0), False),  # Christmas Day (a Friday): a public holiday
        (ny(2026, 12, 31, 18, 0), False),  # a closure of the restaurant's own
    ],
)
def test_open_in_the_restaurants_own_time(moment, is_open):
    assert restaurant().is_open(moment) is is_open


def test_a_holiday_says_why_and_the_next_opening_skips_it():
    place = restaurant()
    christmas_eve_late = ny(2026, 12, 24, 23, 0)
    assert place.closed_on(date(2026, 12, 25)) == "closed for Christmas Day"
    following = place.next_opening(christmas_eve_late)
    assert following is not None and following.start == ny(2026, 12, 26, 12, 0)


def test_holidays_are_opt_in():
    assert restaurant(holidays=None).is_open(ny(2026, 12, 25, 19, 0))


def test_a_range_across_midnight_belongs_to_the_day_it_starts():
    # Christmas is closed, but Thursday the 24th's hours do not run past midnight; a Friday range does,
    # and its early hours belong to Friday even when Saturday is a closure.
    place = restaurant(closures=[date(2026, 12, 12)])
    assert place.is_open(ny(2026, 12, 12, 0, 30))
    assert not place.is_open(ny(2026, 12, 12, 13, 0))


def test_hours_follow_daylight_saving_time():
    place = restaurant()
    # The clocks go forward on Sunday 8 March 2026: noon is 17:00 UTC before, 16:00 UTC after.
    before, after = place.next_opening(ny(2026, 3, 1, 9, 0)), place.next_opening(ny(2026, 3, 8, 9, 0))
    assert before is not None and before.start == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert after is not None and after.start == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)
    # A night across the change is an hour shorter (March) or longer (November) than on the clock face.
    late = restaurant(hours={**HOURS, "sat": ["18:00-03:00"]})
    spring, autumn = late.opening_at(ny(2026, 3, 7, 22, 0)), late.opening_at(ny(2026, 10, 31, 22, 0))
    assert spring is not None and spring.end - spring.start == timedelta(hours=8)
    assert autumn is not None and autumn.end - autumn.start == timedelta(hours=10)
    assert place.is_open(ny(2026, 3, 8, 12, 0)) and not place.is_open(ny(2026, 3, 8, 11, 59))


def test_no_hours_is_open_at_all_times():
    place = Restaurant.always_open(load_menu())
    assert place.is_open(datetime(2026, 12, 25, 3, 0, tzinfo=UTC)) and place.next_opening(ny(2026, 1, 1)) is None


# -- the file --------------------------------------------------------------------------------------


def test_the_packaged_bella_vista_is_the_default():
    place = load_restaurant()
    assert place.name == "Bella Vista" and place.menu.restaurant == "Bella Vista"
    assert place.hours is not None and place.hours["mon"] == () and place.staff_phone is None
    assert place.menu.get("margherita_pizza") is not None


def test_a_restaurant_file_with_its_menu_by_path(tmp_path):
    (tmp_path / "menu.toml").write_text(
        'restaurant = "whatever"\n[[items]]\nid = "dal"\nname = "Dal"\ncategory = "Mains"\nprice_cents = 900\n'
        'allergens = ["milk"]\n'
    )
    path = tmp_path / "restaurant.toml"
    path.write_text(
        'name = "Curry House"\ntimezone = "Europe/London"\nstaff_phone = "+44 20 7946 0958"\nmenu = "menu.toml"\n'
        '[hours]\nmon = ["17:00-23:00"]\n[holidays]\ncountry = "GB"\nsubdivision = "ENG"\n'
    )
    place = load_restaurant(path)
    assert place.name == "Curry House" and place.menu.restaurant == "Curry House"
    assert place.staff_phone == "+442079460958" and [i.id for i in place.menu.items] == ["dal"]
    assert place.closed_on(date(2026, 12, 25)) == "closed for Christmas Day"


def test_a_restaurant_file_with_its_menu_inline(tmp_path):
    path = tmp_path / "restaurant.toml"
    path.write_text(
        'name = "Taco Stand"\n[[menu.items]]\nid = "taco"\nname = "Taco"\ncategory = "Tacos"\n'
        "price_cents = 350\nallergens = []\n"
    )
    place = load_restaurant(path, timezone="America/Denver")
    assert place.timezone == "America/Denver" and place.hours is None and place.menu.items[0].name == "Taco"


def test_a_menu_whose_only_dish_has_a_mistake_is_one_line(tmp_path):
    path = tmp_path / "restaurant.toml"
    path.write_text(
        'name = "Taco Stand"\ntimezone = "America/Denver"\n[[menu.items]]\nid = "taco"\nname = "Taco"\n'
        'category = "Tacos"\nprice_cents = 350\nallergens = ["nuts"]\n'
    )
    with pytest.raises(RestaurantError) as error:
        load_restaurant(path)
    assert str(error.value).splitlines() == [
        f"{path}: menu.items.0.allergens: menu item taco lists unknown allergen 'nuts': "
        "did you mean 'tree nuts' or 'peanuts'? "
        "use one of milk, egg, fish, crustacean shellfish, tree nuts, peanuts, wheat, soybeans, sesame"
    ]


def test_a_time_zone_is_said_once_the_variable_only_stands_in_for_a_file_without_one(tmp_path):
    path = tmp_path / "restaurant.toml"
    path.write_text(f'name = "Harbor Noodles"\ntimezone = "America/Los_Angeles"\nmenu = "{MENU}"\n')
    assert load_restaurant(path).timezone == "America/Los_Angeles"
    assert load_restaurant(path, timezone="America/Los_Angeles").timezone == "America/Los_Angeles"
    with pytest.raises(RestaurantError) as refused:
        load_restaurant(path, timezone="Europe/Rome")
    assert str(refused.value).count("\n") == 0 and "'America/Los_Angeles' but MEMORY_AGENT_TIMEZONE" in str(
        refused.value
    )
    assert load_restaurant(timezone="Europe/Rome").timezone == "Europe/Rome"  # the packaged file names none
    assert load_restaurant().timezone == "UTC"


async def test_the_agents_speak_of_the_restaurant_as_its_file_says(repo):
    _, llm = await scripted_call(
        repo, "ann", [Say("Welcome!")], ["hi"], restaurant=restaurant(name="Harbor Noodles", cuisine="Japanese noodle")
    )
    told = llm.requests[-1].instructions
    assert "Harbor Noodles, a friendly Japanese noodle restaurant" in told and "Italian" not in told
    assert load_restaurant().cuisine == "Italian"  # Bella Vista


def test_the_owners_pages_are_the_restaurants(tmp_path):
    from memory_agent.inspect import load_metadata

    place = restaurant(name="Harbor Noodles", timezone="America/Los_Angeles")
    metadata = load_metadata("memory", restaurant=place)
    config = metadata["plugins"]["memory-agent"]
    assert (config["restaurant"], config["timezone"]) == ("Harbor Noodles", "America/Los_Angeles")
    assert config["menu"] == [{"id": item.id, "name": item.name} for item in place.menu.items]
    assert metadata["title"] == "Harbor Noodles memory" and "Bella Vista" not in metadata["description"]
    assert metadata["plugins"]["datasette-dashboards"]["owner"]["title"].startswith("Harbor Noodles:")


def test_every_mistake_in_the_file_is_one_line(tmp_path):
    path = tmp_path / "restaurant.toml"
    path.write_text(
        'name = "Oops"\ntimezone = "Mars/Olympus"\nprep_minutes = 0\nstaff_phone = "call us"\nmenu = "menu.toml"\n'
        'color = "red"\n[hours]\nmon = ["9-17"]\nfunday = ["10:00-11:00"]\n[holidays]\ncountry = "XX"\n'
    )
    (tmp_path / "menu.toml").write_text((Path(__file__).parents[1] / "memory_agent" / "menu.toml").read_text())
    with pytest.raises(RestaurantError) as error:
        load_restaurant(path)
    lines = str(error.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    said = "\n".join(lines)
    for part in (
        "timezone: unknown time zone 'Mars/Olympus'",
        "prep_minutes:",
        "staff_phone:",
        "hours.mon.0:",
        "hours.funday",
        "holidays: ",
        "'XX'",
        "color:",
    ):
        assert part in said, part
    assert len(lines) == 7


def test_the_cli_refuses_a_bad_restaurant_file_in_one_line_per_mistake(tmp_path, monkeypatch, capsys):
    path = tmp_path / "restaurant.toml"
    path.write_text('name = ""\n[[menu.items]]\nid = "x"\n')
    monkeypatch.setenv("MEMORY_AGENT_RESTAURANT", str(path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["chat", "--identity", "alice", "--db", str(tmp_path / "m.db")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith(f"memory-agent: error: {path}: ") for line in lines)
    assert any("name:" in line for line in lines) and any("menu.items.0.name:" in line for line in lines)
    assert not (tmp_path / "m.db").exists()


# -- ready times and orders for later -----------------------------------------------------------------

TO_ORDER_TAKER = [Say("Welcome! Your name?"), ToolCall("transfer_to_order_taker"), Say("What would you like?")]


def _order(*then) -> list:
    return [*TO_ORDER_TAKER, ToolCall("add_to_order", {"item": "margherita_pizza"}), Say("One pizza."), *then]


def _outputs(llm) -> list[str]:
    """Every tool output the LLM was shown, in order, whichever agent was shown it."""
    seen: dict[str, str] = {}
    for request in llm.requests:
        for item in request.chat_ctx.items:
            if item.type == "function_call_output":
                seen.setdefault(item.call_id, item.output)
    return list(seen.values())


async def test_an_order_while_open_gets_a_ready_time_said_and_stored(repo, db_path):
    clock = Clock(ny(2026, 12, 8, 18, 0))
    call, llm = await scripted_call(
        repo,
        "ann",
        _order(ToolCall("confirm_order"), Say("Placed.")),
        ["hi", "a pizza", "yes"],
        restaurant=restaurant(),
        clock=clock,
    )
    assert rows(db_path, "SELECT ready_at FROM orders") == [("2026-12-08T23:20:00.000000+00:00",)]
    assert rows(db_path, "SELECT outcome, restaurant_open FROM calls") == [("order_placed", 1)]
    told = llm.requests[-1].instructions
    assert "ready at 6:20 PM today, in about 20 minutes" in told


async def test_the_ready_time_grows_with_the_kitchens_queue(repo, db_path):
    clock = Clock(ny(2026, 12, 8, 18, 0))
    for name in ("ann", "ben", "cat"):
        await scripted_call(
            repo,
            name,
            _order(ToolCall("confirm_order"), Say("Placed.")),
            ["hi", "a pizza", "yes"],
            restaurant=restaurant(),
            clock=clock,
        )
    assert rows(db_path, "SELECT substr(ready_at, 12, 5) FROM orders ORDER BY id") == [
        ("23:20",),
        ("23:25",),
        ("23:30",),
    ]
    clock.now += timedelta(minutes=30)  # every one of them is ready by now: the kitchen is free again
    await scripted_call(
        repo,
        "dan",
        _order(ToolCall("confirm_order"), Say("Placed.")),
        ["hi", "a pizza", "yes"],
        restaurant=restaurant(),
        clock=clock,
    )
    assert rows(db_path, "SELECT substr(ready_at, 12, 5) FROM orders ORDER BY id DESC LIMIT 1") == [("23:50",)]


async def test_while_closed_the_order_is_refused_until_a_pickup_time_is_set(repo, db_path):
    clock = Clock(ny(2026, 12, 8, 15, 0))  # Tuesday, between lunch and dinner
    steps = _order(
        ToolCall("confirm_order"),
        Say("We open at five. What time would you like to collect it?"),
        ToolCall("set_pickup_time", {"time": "18:30"}),
        Say("Half past six."),
        ToolCall("confirm_order"),
        Say("Placed for later."),
    )
    call, llm = await scripted_call(
        repo, "eve", steps, ["hi", "a pizza", "place it", "half six", "yes"], restaurant=restaurant(), clock=clock
    )
    outputs = _outputs(llm)
    assert any("closed now; it opens next at 5:00 PM today" in out for out in outputs)
    assert "The restaurant is closed now; it opens next at 5:00 PM today" in llm.requests[0].instructions
    assert rows(db_path, "SELECT status, ready_at FROM orders") == [("placed", "2026-12-08T23:30:00.000000+00:00")]
    assert rows(db_path, "SELECT outcome, restaurant_open FROM calls") == [("order_for_later", 0)]


async def test_a_pickup_time_outside_the_hours_is_refused(repo, db_path):
    clock = Clock(ny(2026, 12, 24, 22, 30))  # Christmas Eve, after closing; Christmas Day is a holiday
    steps = _order(
        ToolCall("set_pickup_time", {"time": "19:00"}),  # Christmas Day? closed. Saturday 26th: 7 PM is fine
        Say("Saturday at seven."),
        ToolCall("set_pickup_time", {"time": "23:30"}),  # after Saturday's closing
        Say("Too late."),
        ToolCall("set_pickup_time", {"time": "12:10"}),  # Saturday, before the kitchen can have it ready
        Say("Too early."),
    )
    call, llm = await scripted_call(
        repo,
        "fay",
        steps,
        ["hi", "a pizza", "7pm", "11:30 pm", "12:10"],
        restaurant=restaurant(),
        clock=clock,
        finish=False,
    )
    outputs = _outputs(llm)
    assert "Pickup set for 7:00 PM on Saturday 26 December" in outputs[-3]
    between = "between 12:20 PM on Saturday 26 December and 11:00 PM on Saturday 26 December"
    assert outputs[-2].endswith(f"23:30 is outside the hours: the order can be collected {between}. Ask again.")
    assert outputs[-1].startswith("12:10 is outside the hours")
    assert call.userdata.order.pickup_at == "2026-12-27T00:00:00.000000+00:00"  # the valid one stands
    await call.finish()


async def test_confirm_order_refuses_a_pickup_time_no_longer_within_the_hours(repo, db_path):
    clock = Clock(ny(2026, 12, 8, 15, 0))
    steps = _order(
        ToolCall("set_pickup_time", {"time": "21:50"}), Say("Ten to ten."), ToolCall("confirm_order"), Say("Sorry.")
    )
    call, llm = await scripted_call(
        repo, "gus", steps, ["hi", "a pizza", "9:50pm"], restaurant=restaurant(), clock=clock, finish=False
    )
    clock.now = ny(2026, 12, 8, 22, 5)  # the caller took their time: it is past closing now
    await call.session.run(user_input="yes, place it")
    assert "The pickup time is outside the restaurant's hours now" in _outputs(llm)[-1]
    await call.finish()
    assert rows(db_path, "SELECT status, ready_at FROM orders") == [("abandoned", None)]
    assert rows(db_path, "SELECT outcome FROM calls") == [("hung_up",)]
