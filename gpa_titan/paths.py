"""Where the repository's files are (for a source checkout, which is how this repo is installed)."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO_ROOT, "configs")
DEBUG_CONFIG = os.path.join(CONFIG_DIR, "debug_cpu.toml")
# The tuned settings of the CPU tuning study (scripts/bench_convergence.py --study): the demo config
# follows them; the library's defaults are the paper's (tests/unit/test_tuned_defaults.py).
TUNED_SETTINGS = os.path.join(REPO_ROOT, "docs", "results", "tuned.json")
