"""The CDC flux: writing, reading back and validating XSD 1.1.2 files."""
