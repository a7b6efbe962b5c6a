"""CDC receipts (accusés de traitement): parsing, ingestion, reconciliation."""
