"""Part-aware tracking (patent application US2024/0282089A1)."""
