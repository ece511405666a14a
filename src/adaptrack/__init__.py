"""adaptrack: vision models when labels are scarce or ambiguous.

Subpackages:
    adaptrack.adapt: domain adaptation with self-learning (patent US12394188B2).
    adaptrack.track: part-aware tracking (patent application US2024/0282089A1).
    adaptrack.common: conventions shared by both (data root, atomic files, checkpoints, reports).
"""

__version__ = "0.1.0"
