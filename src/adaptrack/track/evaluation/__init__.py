"""Offline evaluation of the part-aware tracker on PoseTrack18-format sequences.

Subject and part metrics (success AUC, precision at 20 px, hit / wrong-person / miss rates, hidden-part
abstention), the baselines the element product is compared with, and the ``adaptrack track evaluate``
command, all in :mod:`.evaluate`. It runs trackers from :mod:`adaptrack.track.inference` and reads the
data with :mod:`adaptrack.track.data`.
"""

from adaptrack.track.evaluation.evaluate import evaluate_sequences, output_name, protocol_counts, protocol_line

__all__ = ["evaluate_sequences", "output_name", "protocol_counts", "protocol_line"]
