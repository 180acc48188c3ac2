"""Small `$metadata` documents built in a test from a list of fields, for tests that need
field or resource names no real feed would send (punctuation, non-ASCII, case twins).

    edmx({"Thing": [("Pct%Done", 'Type="Edm.String" MaxLength="50"')]})

Each resource gets a key `<Resource>Key` (Edm.String, MaxLength 64) and a
ModificationTimestamp unless the fields name them; names are XML-quoted as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import quoteattr

STRING = 'Type="Edm.String" MaxLength="50"'
KINDS: Mapping[str, str] = {
    "string": STRING,
    "integer": 'Type="Edm.Int32"',
    "decimal": 'Type="Edm.Decimal" Precision="12" Scale="2"',
    "datetime": 'Type="Edm.DateTimeOffset" Precision="27"',
    "boolean": 'Type="Edm.Boolean"',
    "collection": 'Type="Collection(Edm.String)"',
}


def key_of(resource: str) -> str:
    return f"{resource}Key"


def edmx(resources: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    """An EDMX document declaring `resources`: name -> (field name, type attributes)."""
    types: list[str] = []
    sets: list[str] = []
    for resource, fields in resources.items():
        names = {name for name, _ in fields}
        key = key_of(resource)
        head = [] if key in names else [(key, 'Type="Edm.String" Nullable="false" '
                                              'MaxLength="64"')]
        tail = [] if "ModificationTimestamp" in names else [
            ("ModificationTimestamp", KINDS["datetime"])]
        properties = "".join(f"<Property Name={quoteattr(name)} {attributes}/>"
                             for name, attributes in [*head, *fields, *tail])
        types.append(f'<EntityType Name={quoteattr(resource)}><Key><PropertyRef '
                     f'Name={quoteattr(key)}/></Key>{properties}</EntityType>')
        sets.append(f"<EntitySet Name={quoteattr(resource)} "
                    f"EntityType={quoteattr('T.' + resource)}/>")
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
            '<edmx:DataServices><Schema Namespace="T" '
            'xmlns="http://docs.oasis-open.org/odata/ns/edm">'
            + "".join(types) + '<EntityContainer Name="C">' + "".join(sets)
            + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
