"""trellis's own OpenLineage facets, as the client's models; imported only to send events (the
client takes most of a second to import). Their schema: ``openlineage-facets.schema.json``."""

from __future__ import annotations

import attr
from openlineage.client.generated.base import DatasetFacet, RunFacet

from trellis._version import __version__

PRODUCER = f"urn:trellis:{__version__}"
SCHEMA = "urn:trellis:openlineage-facets:1"


@attr.define
class ContentDatasetFacet(DatasetFacet):
    """The version of a file a run read or wrote: its SHA-256 and size."""

    sha256: str | None
    size: int | None

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA}#/$defs/ContentDatasetFacet"


@attr.define
class RunRunFacet(RunFacet):
    """The run as trellis recorded it."""

    kind: str
    program: str | None
    status: str
    argv: list[str] | None = attr.field(default=None)
    gitCommit: str | None = attr.field(default=None)  # noqa: N815 (the spec's camel case)
    host: str | None = attr.field(default=None)
    makeTarget: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA}#/$defs/RunRunFacet"
