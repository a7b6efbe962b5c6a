"""One module per ``cpf-deposit`` command; each exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse

from cpf_deposit.config import Config, load_config


def config_from(args: argparse.Namespace) -> Config:
    """The config named by ``--config`` (or the default one)."""
    return load_config(getattr(args, "config", None))
