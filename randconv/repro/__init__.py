"""The harness that runs the paper's reproduction: the ``randconv`` command
line and what only a run of it needs.

* :mod:`randconv.repro.cli`: the commands ``describe``, ``invert``,
  ``reproduce`` and ``report``, and the entry points that add the others
  (:mod:`randconv.repro.training_cli`, ``theory_checks.cli``);
* :mod:`randconv.repro.registry` and :mod:`randconv.repro.report`: the
  claims and experiment plugins, ``claims.json`` and the reports;
* :mod:`randconv.repro.plugins`: the entry points, loaded by group;
* :mod:`randconv.repro.preflight`: checks of the flags before any work;
* :mod:`randconv.repro.launch`: joining a job of many processes, and
  leaving it;
* :mod:`randconv.repro.interrupts`: Ctrl-C and SIGTERM.

The library (every other module of :mod:`randconv`) never imports this
package, not even inside a function (tests/test_layout.py): a researcher
who imports the networks, the engine, the kernels or the training gets
none of it.
"""
