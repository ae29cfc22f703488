"""The tuning study and convergence benchmark (plain Python, no TorchTitan: runs are trainer
processes): the spec and its planner (``spec``, ``planner``), the launcher and its argument
builder (``launcher``, ``run_args``), the three modes (``tuning``: study and confirm,
``grid``), their report (``report``) and tuned settings (``tuned``), and the command line of
``scripts/bench_convergence.py`` (``arguments``, ``cli``)."""
