"""The sine waves of the PyTorch time-sequence-prediction example (generate_sine_wave.py)."""

from __future__ import annotations

import numpy as np

N_WAVES = 100
LENGTH = 1000
PERIOD = 20  # the example's T: the wave is sin(x / T)
SEED = 2


def sine_waves() -> np.ndarray:
  """``[100, 1000]`` float64 waves ``sin((arange(1000) + shift) / 20)``.

  ``shift`` is drawn per row from randint(-80, 80) with NumPy's legacy
  generator seeded 2, exactly as the example, so the values are the same.
  """
  rng = np.random.RandomState(SEED)
  x = np.arange(LENGTH) + rng.randint(-4 * PERIOD, 4 * PERIOD, N_WAVES).reshape(N_WAVES, 1)
  return np.sin(x / 1.0 / PERIOD).astype(np.float64)
