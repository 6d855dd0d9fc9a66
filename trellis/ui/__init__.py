"""See it: the ``trellis ui`` dashboard (``server``), the notebook widget (``widget``) and the
JS bundle they and the HTML export share (``bundle``). Nothing here is imported by
``import trellis``."""
