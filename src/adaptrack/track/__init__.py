"""Part-aware tracking (patent application US2024/0282089A1).

Training (:mod:`.train`) lives apart from online inference (:mod:`.inference`) and evaluation
(:mod:`.evaluation`), as pytracking's ``ltr/`` beside ``pytracking/tracker/``; the networks
(:mod:`.models`), the tensor geometry (:mod:`.geometry`), the data layer (:mod:`.data`) and the
command line (:mod:`.cli`) serve all three.
"""
