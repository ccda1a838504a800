"""Example objectives for trying tui-hpo without writing one first.

``objectives.synthetic`` holds millisecond-fast functions (with known optima and Pareto fronts)
that the test suite and demos lean on; ``objectives.digits`` holds a real, small torch training
run. Nothing is imported here so that naming ``objectives.synthetic:quadratic`` in a worker does
not pull in torch.

Every objective is a plain ``f(trial) -> float | Sequence[float]`` with an ``f.directions`` list,
one ``"minimize"``/``"maximize"`` per returned value, so a study can be created without asking.
"""
