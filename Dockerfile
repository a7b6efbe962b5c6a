# Airflow image with cpf-deposit installed, pinned by the committed constraints.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml /opt/cpf-deposit/
COPY --chown=airflow:0 include /opt/cpf-deposit/include
RUN pip install --no-cache-dir -c /opt/cpf-deposit/constraints.txt \
        -r /opt/cpf-deposit/requirements.txt \
 && pip install --no-cache-dir --no-deps /opt/cpf-deposit
