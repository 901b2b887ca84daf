"""Test-session settings shared by the unit tests and the nbval runs of the notebooks."""

import os
import tempfile

# Check cells record progress; in tests that goes to a throwaway folder, never to the
# developer's own progress (kernels started by nbval inherit this environment).
os.environ["PRODREADY_STATE"] = tempfile.mkdtemp(prefix="prodready-test-state-")

# Kernels started side by side (two xdist workers, each grading run's kernels started
# ahead) must not race for TCP ports: the nbval runs use Unix-domain sockets.
from prodready._nbval_report import use_ipc_kernels

use_ipc_kernels()

# A module whose answer is a folder (solutions/10_capstone/, its .starting twin) holds the
# service's own tests: the readiness report runs them against that service, with its own
# fixtures. `make test` collects the notebooks of solutions/, never those folders.
collect_ignore_glob = ["solutions/*/*", "exercises/*/*"]
