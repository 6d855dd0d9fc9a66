"""Writing what the store holds into other forms: notebook metadata, and later PROV/RDF."""
