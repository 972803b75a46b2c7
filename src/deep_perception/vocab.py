"""Label vocabularies shared by the data builder, the trainers and the nodes.

Index order is part of the on-disk format (shards, checkpoints, messages): append, never reorder.
"""

# Per-triangle / per-point semantic surface classes.
SURFACE_CLASSES = ("ground", "wall", "roof", "closure", "window", "door", "other")
SURFACE_INDEX = {name: i for i, name in enumerate(SURFACE_CLASSES)}

# Canonical roof shapes (roofType code lists of SIG3D, AdV and PLATEAU map onto these).
ROOF_CLASSES = ("flat", "shed", "gable", "hip", "half_hip", "mansard", "pyramid", "mixed", "other")
ROOF_INDEX = {name: i for i, name in enumerate(ROOF_CLASSES)}
ROOF_UNKNOWN = -1  # building without a usable roofType: excluded from roof-class training

# rviz colours (R, G, B) per surface class, used for the `rgb` field of labelled clouds.
SURFACE_COLOURS = (
    (140, 140, 140),  # ground
    (230, 200, 150),  # wall
    (200, 40, 40),    # roof
    (120, 120, 200),  # closure
    (60, 160, 230),   # window
    (120, 70, 30),    # door
    (80, 200, 80),    # other
)
