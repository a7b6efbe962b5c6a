"""A stand-in for the Caisse des Dépôts, for demos and tests only."""
