"""Sweep files: each `get_sweep()` returns the dict `experiments/sweep.py` runs (its docstring)."""


def recipe(name: str, what: str) -> dict:
    """A recipe try: `configs/fashion_mnist_{name}.py` alone, as variant `name`, 3 seeds."""
    return dict(
        config=f"configs/fashion_mnist_{name}.py",
        seeds=(0, 1, 2),
        baseline=name,
        variants={name: dict(overrides={}, section="Secs. 4.1, 5", what=what, claim=None)},
    )
