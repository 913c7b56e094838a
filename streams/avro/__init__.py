"""Serialisation: the schema files and their registry, the one codec (single-object and Confluent
framing), batch records, the compatibility check, the generated writer and the experience hash."""
