"""Airflow plugin: the CDC reconciliation dashboard in the Airflow UI.

The app (data, HTML, login check) lives in :mod:`cpf_deposit.dashboard`; this file
only registers it. The api-server mounts it under ``/cpf-dashboard`` and the UI shows
it, embedded, at ``/plugin/cpf-dashboard`` (menu "Browse" → "Rapprochement CDC").
"""

from airflow.plugins_manager import AirflowPlugin

from cpf_deposit.dashboard import airflow_plugin_parts

_apps, _views = airflow_plugin_parts()


class CpfDashboardPlugin(AirflowPlugin):
    name = "cpf_dashboard"
    fastapi_apps = _apps
    external_views = _views
