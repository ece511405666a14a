"""Training of the part-aware tracker: everything that runs only under ``fit-parts`` and ``fit``.

The LightningModules of the part detector and the tracking-subject model (:mod:`.module`), the data
module that samples clips from PoseTrack18-format sets (:mod:`.datamodule`), the losses (:mod:`.losses`),
the clip augmentations (:mod:`.batch`), the ¶49 end conditions (:mod:`.callbacks`) and the temporal
consistency buffer (:mod:`.temporal`). Nothing in :mod:`adaptrack.track.inference` or
:mod:`adaptrack.track.evaluation` needs Lightning's training loop; this package is where it lives.
Names are imported from the submodules (``from adaptrack.track.train.module import TrackerModule``),
so that importing one of them does not import the others.
"""
