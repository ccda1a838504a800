"""Starting and leaving fast: what ``launch`` and ``worker`` do as the ``tui-hpo`` script.

A worker or a launch that is done leaves without tearing down its interpreter: that teardown
(a tenth of a second or more with Optuna loaded) would sit between the last trial and the end
of the search once per process layer (trial process, supervisor, launcher). Start-up runs
without the garbage collector (``runtime.startup``). Neither happens inside a caller's
process (click's test runner): only as the script (``main``).
"""

from __future__ import annotations

from tui_hpo.runtime import startup

as_script = False
"""Run as the ``tui-hpo`` script (``main``), not called in-process."""

exit_fast = False
"""Set by the commands whose start and end others wait for (``launch``, ``worker``)."""


def quick_start_and_exit() -> None:
    global exit_fast
    if as_script:
        exit_fast = True
        startup.begin()
