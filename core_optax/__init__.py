"""CoRe, the Continual Resilient optimizer, as optax gradient transformations."""

from core_optax._core import core
from core_optax._freezing import TIE_TOLERANCE
from core_optax._freezing import frozen_mask
from core_optax._groups import Groups
from core_optax._groups import PerGroup
from core_optax._presets import MAX_STEP_SIZE
from core_optax._presets import STABILITY_PLASTICITY
from core_optax._presets import recommended
from core_optax._scale_by_core import ScaleByCoreState
from core_optax._scale_by_core import scale_by_core
from core_optax._weight_decay import Mask
from core_optax._weight_decay import add_update_scaled_weight_decay

__version__ = "0.1.0"

__all__ = (
    "MAX_STEP_SIZE",
    "STABILITY_PLASTICITY",
    "TIE_TOLERANCE",
    "Groups",
    "Mask",
    "PerGroup",
    "ScaleByCoreState",
    "add_update_scaled_weight_decay",
    "core",
    "frozen_mask",
    "recommended",
    "scale_by_core",
)
