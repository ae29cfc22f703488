"""Convergence benchmark and tuning study: AdamW, GPA-AdamW, DiLoCo-AdamW, ScheduleFree-AdamW.

Every run is this repo's trainer (``python -m gpa_titan.train``) on a folder in C4's on-disk
format, with the paper's schedule (linear warmup over 10% of the steps, cosine to 0), one
CPU thread per run, ``--jobs`` runs at a time; a run already finished in ``--out`` is not
repeated, so an interrupted command continues where it stopped. The tokenizer is a byte-level
BPE trained on the data's training split (nothing is downloaded). Three modes:

1. A tuning study (``--study SPEC.json``), in the shape of the paper's Appendix E: for each
   optimizer its own phases (e.g. lr; then GPA's mu_y x window, DiLoCo's H, outer lr and
   momentum, Schedule-Free's interpolation; then betas; then lr again), each phase keeping
   the best so far, all chosen by the final validation loss on a *tuning split* carved from
   the training documents (``gpa_titan/data/tuning_split.py``); then each chosen setting with
   the spec's final seeds on the real data, reported on its validation split. Writes the
   study's state after every phase (``<out>/study_state.json``), the tuned settings
   (``--tuned``, default ``<report>/tuned.json``), and to ``--report``: ``study.md`` (every
   phase, grid and run), the paper's Table 2, Figures 1b and 9 from the tuning runs, Figure 3
   and the comparison table from the final runs (markdown and PNG); prints the table last.

       python scripts/bench_convergence.py --study docs/results/study_spec.json --data ../shared/data/peps \\
           --out runs/study_peps --report docs/results/peps_study --tuned docs/results/tuned.json --jobs 2

2. ``--confirm TUNED.json``: exactly the settings stored there (setup and per-optimizer
   ``[optimizer]`` values) on any ``--data`` for ``--seeds``; writes ``confirm.md``,
   ``figure3.md/png`` and ``confirm.json`` to ``--report`` (default ``<out>``) and prints the
   comparison table last (optimizer, H, settings, final validation loss mean ± std, steps to
   AdamW's final validation loss, speedup):

       python scripts/bench_convergence.py --confirm docs/results/tuned.json --data ../shared/data/peps \\
           --seeds 0,1,2 --out runs/confirm_peps --jobs 2

3. Without either: a shared grid (``--lrs`` x ``--inner-steps`` x ``--seeds`` for every
   optimizer), the best lr per (optimizer, H) by final validation loss, compared with AdamW's;
   writes ``results.md``, ``results.json``, ``validation_loss.png``:

       python scripts/bench_convergence.py --data ../shared/data/peps --out runs/peps --jobs 2

H: DiLoCo's inner steps; for GPA Table 4's H (mu_x = 0.9^(1/H)). Outputs also give H relative
to the run's length (the paper-equivalent H = H x 12,208 / steps, and the averaging window as
a share of the run; ``gpa_titan/optim/table4.py``).

Arguments are checked before anything is written: an empty list, an empty item, a value
twice, a value out of range (seeds >= 0, lrs > 0, H >= 1, ...), or an argument of another
mode (a grid setting with --study / --confirm, --seeds with --study) is one error line
naming the flag, with exit code 2.

The logic is the package ``gpa_titan.study`` (spec, planner, launcher, report, tuned
settings); this script is its command line (``gpa_titan.study.cli``).
"""

from gpa_titan.study.cli import main

if __name__ == "__main__":
    raise SystemExit(main(description=__doc__))
