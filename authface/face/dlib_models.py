"""The one locator of dlib's model files (shipped by the ``face-recognition-models`` package, CC0).

Used by the dlib detector and landmarks (face stage), the dlib face recogniser (identity models) and the landmark
metric (evaluation). The package is found through the import system without importing it: its ``__init__``
imports ``pkg_resources``, which may be missing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
MMOD_DETECTOR = "mmod_human_face_detector.dat"
RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_models_dir(needed_by: str = "AuthFace") -> str:
    """Folder holding the ``face_recognition_models`` ``.dat`` files.

    Raises:
        ImportError: the package is not installed; the message names ``needed_by`` and the install command.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{needed_by} needs dlib's model files from the 'face-recognition-models' package (an AuthFace "
            "dependency), which is not installed: pip install face-recognition-models "
            "(or pass models_dir=DIR holding the .dat files)"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


def dlib_model_path(name: str, models_dir: str | os.PathLike | None = None, needed_by: str = "AuthFace") -> str:
    """Path of one dlib model file (e.g. :data:`SHAPE_68`), in ``models_dir`` or the installed package.

    Raises:
        ImportError: no ``models_dir`` and the package is missing.
        FileNotFoundError: the file is not there; the message names the file and the fix.
    """
    folder = Path(models_dir).expanduser() if models_dir is not None else Path(dlib_models_dir(needed_by))
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{needed_by}: dlib model file {str(path)!r} not found; reinstall face-recognition-models "
            "or pass models_dir=DIR holding it"
        )
    return str(path)
