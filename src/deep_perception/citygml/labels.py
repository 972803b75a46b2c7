"""Label vocabularies: CityGML semantic surfaces → ``vocab.SURFACE_CLASSES`` and roofType codes →
``vocab.ROOF_CLASSES``.

roofType code lists differ between producers; the numbers do not collide (except 1000 = flat in
both SIG3D and AdV), so one table covers all of them:

* SIG3D (CityGML 1.0/2.0 code list): 1000-1130
* AdV / ALKIS Dachform (German state surveys, NRW, Berlin): 1000, 2100-5000, 9999
* PLATEAU (Japan, Building_roofType): 1-6 mapped, any other PLATEAU code → other
* words (Vienna: FLACHDACH, SATTELDACH, ...; English names)

Values holding several codes ("2100;1000", Helsinki) map to the common class if all agree, else mixed.
"""

from deep_perception.vocab import ROOF_INDEX, ROOF_UNKNOWN, SURFACE_INDEX

# code -> canonical roof class name
ROOF_CODES = {
    # SIG3D
    "1000": "flat", "1010": "shed", "1020": "shed", "1030": "gable", "1040": "hip",
    "1050": "half_hip", "1060": "mansard", "1070": "pyramid", "1080": "other", "1090": "other",
    "1100": "other", "1110": "other", "1120": "other", "1130": "mixed",
    # AdV (ALKIS Dachform)
    "2100": "shed", "2200": "shed", "3100": "gable", "3200": "hip", "3300": "half_hip",
    "3400": "mansard", "3500": "pyramid", "3600": "other", "3700": "other", "3800": "other",
    "3900": "other", "4000": "other", "5000": "mixed", "9999": "other",
    # PLATEAU Building_roofType (陸屋根, 片流れ, 切妻, 寄棟, 入母屋, 方形)
    "1": "flat", "2": "shed", "3": "gable", "4": "hip", "5": "half_hip", "6": "pyramid",
}
ROOF_WORDS = {
    "FLACHDACH": "flat", "PULTDACH": "shed", "SATTELDACH": "gable", "WALMDACH": "hip",
    "KRUEPPELWALMDACH": "half_hip", "KRÜPPELWALMDACH": "half_hip", "MANSARDDACH": "mansard",
    "MANSARDENDACH": "mansard", "ZELTDACH": "pyramid", "SPITZDACH": "pyramid", "KUPPELDACH": "other",
    "FLAT": "flat", "SHED": "shed", "MONOPITCH": "shed", "GABLE": "gable", "GABLED": "gable",
    "HIP": "hip", "HIPPED": "hip", "HALF_HIP": "half_hip", "HALF-HIPPED": "half_hip",
    "MANSARD": "mansard", "PYRAMID": "pyramid", "PAVILION": "pyramid", "MIXED": "mixed",
    "OTHER": "other",
}

# CityGML element local name -> surface class (nearest semantic ancestor of a polygon wins)
SURFACE_ELEMENTS = {
    "RoofSurface": "roof", "WallSurface": "wall", "GroundSurface": "ground",
    "ClosureSurface": "closure", "Window": "window", "WindowSurface": "window", "Door": "door",
    "DoorSurface": "door", "OuterCeilingSurface": "other", "OuterFloorSurface": "other",
    "BuildingInstallation": "other", "lod0RoofEdge": "roof", "lod0FootPrint": "ground",
}
# Interior features: skipped (exterior point clouds), counted.
INTERIOR_ELEMENTS = {"Room", "IntBuildingInstallation", "BuildingFurniture", "interiorRoom",
                     "FloorSurface", "CeilingSurface", "InteriorWallSurface", "BuildingRoom",
                     "interiorFurniture", "buildingRoom", "buildingFurniture"}


def roof_class_of(code):
    """Canonical roof class index for a roofType value (``ROOF_UNKNOWN`` if absent or unknown)."""
    if code is None:
        return ROOF_UNKNOWN
    names = set()
    for token in code.replace(";", " ").replace(",", " ").split():
        token = token.strip()
        name = ROOF_CODES.get(token) or ROOF_WORDS.get(token.upper())
        if name is None and token.isdigit():
            name = ROOF_CODES.get(str(int(token)))
        names.add(name or "other")
    if not names:
        return ROOF_UNKNOWN
    if len(names) > 1:
        return ROOF_INDEX["mixed"]
    return ROOF_INDEX[names.pop()]


def aggregate_roof_class(own_class, part_classes):
    """Roof class of a building split into parts: its own roofType if set; otherwise the parts'
    common class, ``mixed`` if known part classes differ, unknown if no part has one."""
    if own_class != ROOF_UNKNOWN:
        return own_class
    known = {c for c in part_classes if c != ROOF_UNKNOWN}
    if not known:
        return ROOF_UNKNOWN
    if len(known) == 1:
        return known.pop()
    return ROOF_INDEX["mixed"]


SURFACE_ID = {name: SURFACE_INDEX[cls] for name, cls in SURFACE_ELEMENTS.items()}
