"""What the apps above tracking do when it records something: registered by them, called by tracking.

tracking records events and contacts; automations runs actions on them and keeps report rollups of them, so
automations imports tracking and tracking may not import automations. At the three moments automations must act in
the same transaction, tracking calls the functions registered here, in order, explicitly (no signal: an exception
rolls the caller's transaction back, as a direct call would). automations registers them when Django starts
(automations.apps.AutomationsConfig.ready).
"""

from collections.abc import Callable

_events_recorded: list[Callable] = []
_contact_identified: list[Callable] = []
_contact_merging: list[Callable] = []


def _register(hooks: list[Callable], function: Callable) -> Callable:
    # Once: Django may run an app's ready() again (tests that change the installed apps).
    if function not in hooks:
        hooks.append(function)
    return function


def on_events_recorded(function: Callable) -> Callable:
    """function(*, event_records) after a batch's events are inserted, in its transaction (automations: their
    action runs)."""
    return _register(_events_recorded, function)


def on_contact_identified(function: Callable) -> Callable:
    """function(*, contact) once a visitor became this known contact, in that transaction (automations: the runs that
    waited for identification)."""
    return _register(_contact_identified, function)


def on_contact_merging(function: Callable) -> Callable:
    """function(*, contact) before an anonymous contact's rows move to a known one (automations: the report days
    that counted it)."""
    return _register(_contact_merging, function)


def events_recorded(*, event_records: list) -> None:
    for function in _events_recorded:
        function(event_records=event_records)


def contact_identified(*, contact) -> None:
    for function in _contact_identified:
        function(contact=contact)


def contact_merging(*, contact) -> None:
    for function in _contact_merging:
        function(contact=contact)
