"""AEF: variational auto-encoding of Fashion-MNIST (mini-batch learning, batch 64)."""

from benchmarks.comparison.data import fashion_mnist
from benchmarks.comparison.tasks.common import image
from benchmarks.comparison.tasks.common import vae

TASK = image.make_task(
    name="AEF",
    regime="mini-batch",
    error_name="test loss per image (BCE + KL)",
    model=vae.MODEL,
    load=fashion_mnist.load,
    budgets={
        "quick": image.Budget(n_train=512, n_test=256, epochs=2),
        "standard": image.Budget(n_train=3200, n_test=1000, epochs=3),
        "full": image.Budget(n_train=60000, n_test=10000, epochs=10),
    },
    failure_error=1000.0,
)
