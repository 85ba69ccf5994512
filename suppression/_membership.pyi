"""Types of the compiled batch-membership loop (``_membership.c``)."""

import numpy as np
import numpy.typing as npt

def bind(path: str, /) -> bool: ...
def mark_members(
    address: int, values: npt.NDArray[np.uint64], masks: npt.NDArray[np.uint64], bit: int, /
) -> int: ...
