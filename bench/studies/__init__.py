"""The study and the tasks: the calibration language x evaluation language matrix (``polysparse study``),
its task columns and finished cells, the answers collected from its tables, and the multiple-choice task
evaluation of ``polysparse eval`` (with the lm-eval bridge)."""
