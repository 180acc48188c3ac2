"""The Entity Data Model: a `$metadata` document (EDMX) read into entity types, fields and
enumerations. Below both trestle/ (which fetches it) and store/ (which builds tables from
it): it imports only core/."""
