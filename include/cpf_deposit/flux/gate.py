"""A fast XSD pass/fail gate for the files this project writes (one passage per line).

The streaming validator (:mod:`cpf_deposit.flux.validator`) locates every error with
its line, column and idTechnique, at about 1.7 times the cost of libxml2's own parse
and validation. For the files our writer has just produced, what the pipeline needs
first is a verdict: this gate cuts the file at line boundaries into documents of a few
thousand passages, each wrapped in a fixed valid envelope, and lets libxml2 parse and
validate them in C; the file's own envelope (header and certification blocks, each kept
with its first passage) is validated once. A passage is valid wherever it sits (the
XSD types it the same everywhere), and every line is either envelope or whole
passages, so the file is valid exactly when all these documents are. Anything else
(a file of another shape, a line that breaks the structure, an invalid passage)
answers ``False``: the caller then runs the full validator for the diagnosis.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cpf_deposit.flux.writer import NAMESPACE, XSI
from cpf_deposit.progress import Progress

log = logging.getLogger(__name__)

PASSAGE_OPEN = b"<cpf:passageCertification>"
BATCH = 4000
_SKELETON_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<cpf:flux xmlns:cpf="{NAMESPACE}" xmlns:xsi="{XSI}">'
    "<cpf:idFlux>gate</cpf:idFlux><cpf:horodatage>2024-01-01T00:00:00+01:00</cpf:horodatage>"
    "<cpf:emetteur><cpf:idClient>AAAAAAAA</cpf:idClient><cpf:certificateurs>"
    "<cpf:certificateur><cpf:idClient>AAAAAAAA</cpf:idClient><cpf:idContrat>gate</cpf:idContrat>"
    "<cpf:certifications><cpf:certification><cpf:type>RNCP</cpf:type><cpf:code>RNCP1</cpf:code>"
    "<cpf:passageCertifications>\n"
).encode()
_SKELETON_TAIL = (
    b"</cpf:passageCertifications></cpf:certification></cpf:certifications>"
    b"</cpf:certificateur></cpf:certificateurs></cpf:emetteur></cpf:flux>\n"
)


def _valid(doc: bytes, schema) -> bool:
    """One document: well-formed, no DOCTYPE or processing instruction (the XSD does not
    see them, the parser does), and valid."""
    from lxml import etree

    from cpf_deposit.flux.reader import UnsafeXmlError, refuse_unsafe_tree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        tree = etree.fromstring(doc, parser)
        if tree.getroottree().docinfo.doctype:
            return False
        # A processing instruction is spelled "<?" in these UTF-8 bytes: without one
        # after the declaration, the tree holds none and need not be walked (a fifth
        # of the gate's time at 200 MB); with one, the parser's tree decides.
        if b"<?" in doc[doc.find(b"?>") + 2 :]:
            refuse_unsafe_tree(tree)
    except (etree.XMLSyntaxError, UnsafeXmlError):
        return False
    return schema.validate(tree)


def passes_xsd(path: str | Path, schema) -> tuple[bool, int]:
    """(valid, passages) for a file written one passage per line; ``False`` means "run
    the full validator", not necessarily "invalid"."""
    label = f"contrôle XSD de {Path(path).name}"
    with Progress(log, label, unit="passages") as progress, open(path, "rb") as fh:
        return _passes(fh, schema, progress)


def _passes(fh, schema, progress: Progress) -> tuple[bool, int]:
    envelope: list[bytes] = []
    batch: list[bytes] = []
    passages = 0
    first_in_block = True
    for line in fh:
        if line.startswith(PASSAGE_OPEN):
            passages += 1
            if first_in_block:
                envelope.append(line)  # keeps the block valid in the envelope document
                first_in_block = False
                continue
            batch.append(line)
            if len(batch) >= BATCH:
                if not _valid(_SKELETON_HEAD + b"".join(batch) + _SKELETON_TAIL, schema):
                    return False, passages
                progress.advance(len(batch))
                batch.clear()
        else:
            envelope.append(line)
            first_in_block = True
    progress.advance(passages - progress.count)
    if batch and not _valid(_SKELETON_HEAD + b"".join(batch) + _SKELETON_TAIL, schema):
        return False, passages
    return _valid(b"".join(envelope), schema), passages
