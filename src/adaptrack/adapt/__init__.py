"""Domain adaptation with self-learning (patent US12394188B2)."""
