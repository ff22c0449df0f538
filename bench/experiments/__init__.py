"""One-off measurements behind the committed results and docs/ pages: each module reproduces one result under
``bench/results/`` (``python -P -m polysparse.bench.experiments.<name>``; the command is in its docstring).

They serve the project's own evidence, not a user of the ``polysparse`` command: the wheel leaves this folder
out (pyproject's ``packages``), and product code never imports from it.
"""
