"""ICD-digits: convolutional classification of handwritten digits (mini-batch, batch 64).

The paper used MNIST, which cannot be had offline; this task uses scikit-learn's 8x8
digits upsampled to 28x28 (see :mod:`benchmarks.data.digits`), normalised with their own
training mean and standard deviation (0.3102, 0.3197).
"""

from benchmarks.data import digits
from benchmarks.tasks import _classifier, _image

TASK = _image.make_task(
    name="ICD-digits",
    regime="mini-batch",
    error_name="test NLL per image",
    model=_classifier.MODEL,
    load=digits.load,
    budgets={
        "quick": _image.Budget(n_train=128, n_test=128, epochs=2),
        "standard": _image.Budget(n_train=384, n_test=300, epochs=2),
        "full": _image.Budget(n_train=1497, n_test=300, epochs=14),
    },
    normalisation=(0.3102, 0.3197),
    data_note="; sklearn digits upsampled to 28x28 instead of MNIST (1497 / 300 images)",
)
