"""AED-digits: variational auto-encoding of handwritten digits (mini-batch learning, batch 64).

The paper used MNIST, which cannot be had offline; this task uses scikit-learn's 8x8
digits upsampled to 28x28 (see :mod:`benchmarks.comparison.data.digits`).
"""

from benchmarks.comparison.data import digits
from benchmarks.comparison.tasks.common import image
from benchmarks.comparison.tasks.common import vae

TASK = image.make_task(
    name="AED-digits",
    regime="mini-batch",
    error_name="test loss per image (BCE + KL)",
    model=vae.MODEL,
    load=digits.load,
    budgets={
        "quick": image.Budget(n_train=512, n_test=256, epochs=2),
        "standard": image.Budget(n_train=1497, n_test=300, epochs=4),
        "full": image.Budget(n_train=1497, n_test=300, epochs=10),
    },
    data_note="; sklearn digits upsampled to 28x28 instead of MNIST (1497 / 300 images)",
    failure_error=1000.0,
)
