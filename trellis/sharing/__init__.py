"""Moving runs between stores: push and pull, the JSON export, and every import of provenance
made elsewhere (another store, an export, a notebook's metadata), validated on the way in."""
