-- The cpf-deposit ledger lives beside the Airflow metadata, in its own database.
CREATE DATABASE cpf_ledger OWNER airflow;
