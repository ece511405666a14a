"""Loss terms of Expression (1): domain loss (S3, S33) and self-learning loss (S9).

Each states its inputs, shapes and math. The source and minority-shot losses (S2, S32) are plain
cross entropies of the class classifier (:func:`torch.nn.functional.cross_entropy`); the pseudo
labels the self-learning loss reads come from :class:`adaptrack.adapt.pseudo.PseudoLabeler`.

Expression (1), with the third embodiment's minority-shot term::

    loss = theta_d * domain_loss + theta_s * source_loss + theta_p * selftrain_loss
           + theta_m * minority_shot_loss
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaptrack.adapt.pseudo import PseudoLabels


def domain_labels(n_source: int, n_total: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Domain labels of S3 / S33: ``0`` for the first ``n_source`` images, ``1`` for the rest.

    Returns:
        ``(n_total,)`` int64.
    """
    labels = torch.ones(n_total, dtype=torch.long, device=device)
    labels[:n_source] = 0
    return labels


def domain_loss(logits: torch.Tensor, n_source: int) -> torch.Tensor:
    """Second loss (S3, S33): cross entropy of the domain classifier, source = 0, every target image = 1.

    Args:
        logits: ``(N, 2)`` domain logits of one call of the domain classifier on the source features
            (the first ``n_source`` rows) followed by the target features (unlabeled, labeled and
            pseudo-labeled target images all have domain label 1, ¶165).
        n_source: Number of source rows.

    Returns:
        Scalar mean cross entropy over all ``N`` images.
    """
    return F.cross_entropy(logits, domain_labels(n_source, logits.shape[0], logits.device))


def self_learning_loss(logits: torch.Tensor, pseudo: PseudoLabels, mask_value: float = 0.0) -> torch.Tensor:
    """Third loss (S9): cross entropy of target logits against their pseudo labels.

    Math: with ``l`` the logits of image i after masking (the maximum logit set to
    ``mask_value`` for ``masked_max`` images, every logit set to ``mask_value`` for ``masked_full``
    images), ``loss = (1/B) * sum_{i contributing} -log softmax(l_i)[y_i]`` where ``y_i`` is the
    pseudo label. Dividing by the batch size B (not by the number selected) makes the term grow
    with the share of confident images, as in TLlib's confidence-based self-training loss.

    Args:
        logits: ``(B, C)`` class logits of the pseudo-labeled target images (with gradient).
        pseudo: Output of :class:`~adaptrack.adapt.pseudo.PseudoLabeler` for the same images.
        mask_value: Value written into masked logits (the patent uses zero; any value, ¶105).

    Returns:
        Scalar loss; exactly 0 (still differentiable) when no image contributes.
    """
    rows = torch.arange(logits.shape[0], device=logits.device)
    masked = logits.clone()  # (B, C)
    masked[rows[pseudo.masked_max], pseudo.labels[pseudo.masked_max]] = mask_value
    masked[pseudo.masked_full] = mask_value
    per_image = F.cross_entropy(masked, pseudo.labels, reduction="none")  # (B,)
    return (per_image * pseudo.contributing.float()).sum() / max(1, logits.shape[0])
