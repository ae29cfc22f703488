"""scripts/shard_alignment.py: FSDP2 shards on 2 gloo ranks counted for 16-byte alignment, run
exactly as its own error message says to run it."""

import re
import subprocess
import sys

from helpers import REPO, run


def test_the_advised_command_reports_every_debug_shard_aligned():
    proc = subprocess.run([sys.executable, "scripts/shard_alignment.py", "--flavor", "debug"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    advised = re.search(r"run it under torchrun: (python -m torch\.distributed\.run .*--flavor debug)", proc.stderr)
    assert advised, proc.stderr
    cmd = advised.group(1).split()
    out = run([sys.executable, *cmd[1:]], timeout=300).stdout
    rows = [line.split(" | ") for line in out.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert len(rows) == 2, out
    for row in rows:
        tensors, counts = int(row[1]), [int(x) for x in row[2:8]]
        assert tensors == 39 and counts == [39] * 6 and row[8].strip(" |") == "-", row
