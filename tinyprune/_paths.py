"""Where the project's non-Python assets live (board files, C sources).

tinyprune is installed editable (``pip install -e .``) from a checkout, so the assets are
the checkout's top-level ``boards/`` and ``firmware/`` folders. May not import tinyprune modules.
"""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
BOARDS_DIR = ROOT / "boards"
FIRMWARE_DIR = ROOT / "firmware"
KERNELS_DIR = FIRMWARE_DIR / "kernels"
BSP_DIR = FIRMWARE_DIR / "bsp"
HARNESS_DIR = FIRMWARE_DIR / "harness"
SHARED_MODELS_DIR = ROOT.parent / "shared" / "models"


def require(path: Path) -> Path:
    if not path.exists():
        from tinyprune.errors import ToolError
        raise ToolError(f"tinyprune asset not found: {path}",
                        hint="install tinyprune from a checkout with `pip install -e .` (see README)")
    return path
