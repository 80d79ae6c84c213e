"""ICD-digits: convolutional classification of handwritten digits (mini-batch, batch 64).

The paper used MNIST, which cannot be had offline; this task uses scikit-learn's 8x8
digits upsampled to 28x28 (see :mod:`benchmarks.comparison.data.digits`), normalised with their own
training mean and standard deviation (0.3102, 0.3197).
"""

from benchmarks.comparison.data import digits
from benchmarks.comparison.tasks.common import classifier
from benchmarks.comparison.tasks.common import image

TASK = image.make_task(
    name="ICD-digits",
    regime="mini-batch",
    error_name="test NLL per image",
    model=classifier.MODEL,
    load=digits.load,
    budgets={
        "quick": image.Budget(n_train=128, n_test=128, epochs=2),
        "standard": image.Budget(n_train=384, n_test=300, epochs=2),
        "full": image.Budget(n_train=1497, n_test=300, epochs=14),
    },
    normalisation=(0.3102, 0.3197),
    data_note="; sklearn digits upsampled to 28x28 instead of MNIST (1497 / 300 images)",
)
