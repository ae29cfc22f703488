"""Streaming C4 from the hub fails at start-up with a message that says what to do when offline."""

import os
import subprocess
import sys

from helpers import REPO


def test_streaming_without_network_fails_clearly():
    code = (
        "from gpa_titan.data.documents import HFStreamingDocuments, DataConfigError\n"
        "try:\n    HFStreamingDocuments('train', 0, 1, True)\n"
        "except DataConfigError as e:\n    print('CLEAR:', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "CLEAR: Could not open allenai/c4" in proc.stdout, proc.stdout + proc.stderr
    assert "dataset_path" in proc.stdout
