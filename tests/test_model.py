"""The canonical passage: field table, derived values, and the two checking paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import given, settings

from cpf_deposit.model import (
    FIELDS,
    Kind,
    Passage,
    _all_problems,
    _writable,
    fields_markdown,
    problems,
)
from cpf_deposit.samples import sample_passages
from tests.strategies import passages


def test_every_field_names_its_xsd_element_and_dictionary_id():
    assert {f.name for f in FIELDS} == {f.name for f in dataclasses.fields(Passage)}
    for f in FIELDS:
        if f.kind is not Kind.INTERNAL:
            assert f.element and f.ref and f.doc, f.name


def test_country_code_is_derived_from_a_99xxx_insee_code_only():
    p = sample_passages()[1]
    assert p.birth_insee_code == "99341" and p.birth_country_code == "341"
    assert sample_passages()[0].birth_country_code is None  # born in France
    assert dataclasses.replace(p, birth_insee_code=None).birth_country_code is None


@settings(max_examples=300, deadline=None)
@given(passages(valid_only=False))
def test_fast_path_never_accepts_what_the_precise_path_refuses(passage):
    precise = _all_problems(passage)
    if _writable(passage):
        assert precise == []
    assert problems(passage) == precise


def test_passage_model_doc_is_in_step_with_the_field_table():
    page = (Path(__file__).resolve().parents[1] / "docs" / "passage-model.md").read_text(
        encoding="utf-8"
    )
    assert page.endswith(fields_markdown()), "run `make docs`"
