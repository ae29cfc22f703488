"""Paper-style table and validation-loss plot from the logs of any set of runs
(``python scripts/plot_runs.py --help``; the logic is ``gpa_titan/analysis/plot_runs.py``).

    python scripts/plot_runs.py outputs/llama_160m_* --out figures/llama_160m
    python scripts/plot_runs.py outputs/sweeps/h_sweep outputs/llama_160m_adamw --out figures/h_sweep --figures
"""

from gpa_titan.analysis.plot_runs import main

if __name__ == "__main__":
    raise SystemExit(main())
