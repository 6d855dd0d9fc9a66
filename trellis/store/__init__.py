"""Where runs are kept: the schema, a SQLite or PostgreSQL connection, and the object folder."""
