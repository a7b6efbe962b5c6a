"""Extraction of certification awards from the student information systems.

Apogée, GEODE and Pégase each have one SQL file (``cpf_deposit/sql``) returning the
same canonical columns (:mod:`.canonical`); :mod:`.extract` runs it through an
Airflow connection, :mod:`.mapping` turns each row into a
:class:`cpf_deposit.model.Passage` and reports what it cannot map.
"""
