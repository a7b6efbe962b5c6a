"""cpf_deposit: feed the CPF Passeport de compétences from a university's student records.

The domain library behind the Airflow DAGs and the ``cpf-deposit`` command. It never
imports Airflow at module level; heavy libraries (lxml, pandas, GX) are imported by the
functions that need them, so DAG parsing stays fast.
"""

__version__ = "0.1.0"
