"""ICF: convolutional classification of Fashion-MNIST (mini-batch learning, batch 64).

Inputs are normalised with Fashion-MNIST's own training mean and standard deviation
(0.2860, 0.3530; the MNIST example's 0.1307, 0.3081 belong to MNIST): our choice.
"""

from benchmarks.comparison.data import fashion_mnist
from benchmarks.comparison.tasks.common import classifier
from benchmarks.comparison.tasks.common import image

TASK = image.make_task(
    name="ICF",
    regime="mini-batch",
    error_name="test NLL per image",
    model=classifier.MODEL,
    load=fashion_mnist.load,
    budgets={
        "quick": image.Budget(n_train=128, n_test=128, epochs=2),
        "standard": image.Budget(n_train=384, n_test=500, epochs=2),
        "full": image.Budget(n_train=60000, n_test=10000, epochs=14),
    },
    normalisation=(0.2860, 0.3530),
)
