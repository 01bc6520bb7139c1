"""builder's own repository as the images project the tests work on."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "images"
