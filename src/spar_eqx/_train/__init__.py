"""The thin trainer: loops, devices, checkpoints, logs and files around pure learners.

- `_chunk`: the run axis (grid points x seeds) and the compiled chunk runner;
- `_data`: the dataset loaded, checked against its environment and normalised;
- `_run`: the run loop, checkpoints and resume (`Trainer`); `_interrupt`: its Ctrl-C and
  progress bar; `_sharing`: which grid points share a stage's runs;
- `_evaluate`: the trainer's evaluation half (policies, scores, diagnostics, the record);
- `_results`: evaluation of stacked runs and the shape of `results.json`;
- `_log`: `metrics.csv` and the learning-curve plot; `_checkpoint`: atomic files;
- `_api`: `train` and `load_trained`; `_folder`: a run folder's checks and lock;
  `_fingerprint`: the training data's fingerprint; `_rendezvous`: the processes' lobby.

No module here names an algorithm: everything comes from `spar_eqx._registry`.
"""

from ._api import load_trained as load_trained, train as train
from ._folder import output_folder_problem as output_folder_problem
from ._run import Trainer as Trainer
