"""What grafana-foundation-sdk catches: each case below builds something with one mistake.

A measurement, not used by the project (see ``measure.py``). Two sides:

- At run time: ``python mistakes.py`` builds each case and encodes it to JSON. Only range
  checks fire: a misspelt method (AttributeError), a width outside 1 to 24, a height of 0, a
  line width over 10, an opacity over 100 (ValueError). Everything else is accepted.
- Under ``mypy --strict mistakes.py``: only the typed builder methods help, so a misspelt
  method and an enum value passed as a misspelt string are errors; every other case passes.

``measure.py`` runs both and prints, case by case, which caught the mistake.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, table
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

Case = Callable[[], object]

CASES: dict[str, Case] = {}
"""Every case by name, in the order of this file; the docstring's line says the mistake."""


def case(mistake: Case) -> Case:
    """Register a case in ``CASES``."""
    CASES[mistake.__name__] = mistake
    return mistake


def outcome(mistake: Case) -> str:
    """``accepted``, or ``caught`` and what the SDK raised while building or encoding."""
    try:
        json.dumps(mistake(), cls=JSONEncoder)
    except (AttributeError, TypeError, ValueError) as error:
        return f"caught ({type(error).__name__}: {error})"
    return "accepted"


# --- typing: what mypy --strict sees ----------------------------------------------------


@case
def enum_as_misspelt_string() -> object:
    """An enum option given as a misspelt string ("bakground")."""
    return stat.Panel().color_mode("bakground").build()


@case
def misspelt_method() -> object:
    """A builder method that does not exist (colour_mode)."""
    return stat.Panel().colour_mode(cm.BigValueColorMode.BACKGROUND).build()


# --- ranges: what is checked at run time ------------------------------------------------


@case
def negative_width() -> object:
    """A panel width below 1."""
    return stat.Panel().span(-3).build()


@case
def width_over_24() -> object:
    """A panel wider than the grid's 24 columns."""
    return stat.Panel().span(30).build()


@case
def zero_height() -> object:
    """A panel height of 0."""
    return stat.Panel().height(0).build()


@case
def line_width_over_10() -> object:
    """A line width over 10."""
    return statetimeline.Panel().line_width(20).build()


@case
def opacity_over_100() -> object:
    """A fill opacity over 100."""
    return statetimeline.Panel().fill_opacity(150).build()


# --- everything else: accepted ----------------------------------------------------------


@case
def unknown_unit() -> object:
    """A unit Grafana does not know ("bytez")."""
    return stat.Panel().unit("bytez").build()


@case
def misspelt_override_property() -> object:
    """An override property id misspelt ("custom.celOptions")."""
    coloured = cm.TableColoredBackgroundCellOptions()
    misspelt = dm.DynamicConfigValue("custom.celOptions", coloured)
    return table.Panel().override_by_name("x", [misspelt]).build()


@case
def override_value_of_wrong_shape() -> object:
    """An override property whose value has the wrong shape (42 for the cell options)."""
    wrong = dm.DynamicConfigValue("custom.cellOptions", 42)
    return table.Panel().override_by_name("x", [wrong]).build()


@case
def unknown_transformation() -> object:
    """A transformation id Grafana does not know ("organise")."""
    organise = dm.DataTransformerConfig(id_val="organise", options={})
    return table.Panel().transformations([organise]).build()


@case
def transformation_options_nonsense() -> object:
    """A transformation whose options are not its options (a list of numbers)."""
    merge = dm.DataTransformerConfig(id_val="merge", options=[1])
    return table.Panel().transformations([merge]).build()


@case
def unknown_colour() -> object:
    """A threshold colour that is no colour ("rde")."""
    steps = [dm.Threshold(None, "green"), dm.Threshold(5, "rde")]
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps).build()


@case
def descending_thresholds() -> object:
    """Threshold steps that go down instead of up."""
    steps = [dm.Threshold(None, "green"), dm.Threshold(5, "red"), dm.Threshold(1, "orange")]
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps).build()


@case
def variable_query_wrong_key() -> object:
    """A query variable's query with a misspelt key ("qryTyp")."""
    return db.QueryVariable("x").query({"qryTyp": 1, "query": "up"}).build()


@case
def duplicate_panel_id() -> object:
    """Two panels with the same id."""
    return (
        db.Dashboard("t")
        .with_panel(stat.Panel().id(1).span(12).height(4))
        .with_panel(stat.Panel().id(1).span(12).height(4))
        .build()
    )


@case
def overlapping_panels() -> object:
    """A panel placed over another one."""
    return (
        db.Dashboard("t")
        .with_panel(stat.Panel().span(12).height(4))
        .with_panel(stat.Panel().grid_pos(dm.GridPos(h=4, w=12, x=6, y=0)))
        .build()
    )


@case
def layout_past_column_24() -> object:
    """Two panels, 12 and 16 wide: the automatic layout puts the second at columns 12 to 28."""
    return (
        db.Dashboard("t")
        .with_panel(stat.Panel().span(12).height(4))
        .with_panel(stat.Panel().span(16).height(4))
        .build()
    )


@case
def uid_too_long() -> object:
    """A dashboard uid longer than Grafana's 40 characters."""
    return db.Dashboard("t").uid("x" * 41).build()


if __name__ == "__main__":
    for name, mistake in CASES.items():
        print(f"{name}: {outcome(mistake)}")
