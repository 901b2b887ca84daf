"""Module 10, the capstone: the production-readiness report of a service made of files.

The learner's service is a folder (``10_capstone/`` next to the workbook). Each check cell
judges one stage of the report: it runs the service for real (``_run``), under load,
against the course's flaky payment provider and mail service (``_upstream``), and judges
the evidence (``_verdicts``); the last stage runs the service's own tests under planted
regressions (``_suite``, ``_regressions``). ``python -m prodready._checks.capstone report``
prints the whole report (``_report``).
"""

from ._checkers import register as _register

_register()
