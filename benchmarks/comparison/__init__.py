"""The accuracy comparison: the paper's ten tasks, its optimizers, runner, scores and report."""
