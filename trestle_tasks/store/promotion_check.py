"""STORE_INDEXED_FIELDS checked against the fields a resource has, before any DDL.

Promotion is declarative: a field missing from the setting is demoted (its column and
index dropped). So a misspelt name must not be skipped quietly: `Property.LivingAreaa`
would promote nothing, and a typo in a name that was promoted before would drop the
column queries rely on. Every unknown name is an error, and nothing is changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.edm.metadata import ResourceSpec


def check_promoted_names(promote: Mapping[str, Sequence[str]],
                         specs: Mapping[str, ResourceSpec], *, source: str) -> None:
    """Raise ConfigurationError naming every `Resource.Field` of `promote` whose resource
    is in `specs` but lacks the field (`source`: where the fields were read, for the
    message). Resources `specs` lacks are the settings' to check (TRESTLE_RESOURCES)."""
    unknown: list[str] = []
    for resource, names in promote.items():
        spec = specs.get(resource)
        if spec is None:
            continue
        known = [field.name for field in spec.fields]
        for name in names:
            if spec.has_field(name):
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            unknown.append(f"{resource}.{name}"
                           + (f" (did you mean {resource}.{close[0]}?)" if close else ""))
    if unknown:
        raise ConfigurationError(
            f"STORE_INDEXED_FIELDS names {'; '.join(unknown)}, which {source} does not "
            "declare: correct or remove it (nothing was changed)")
