"""The project's toolkit, shared by every package and benchmark: not mathematics.

- :mod:`opo_toolkit.cliargs`: command-line flags declared once on dataclasses; ``UsageError``
  (one line, exit 2) and ``run_command``.
- :mod:`opo_toolkit.files`: atomic writes (temp file + rename), output checks, package versions.
- :mod:`opo_toolkit.progress`: progress bars on a terminal, plain lines in logs.
- :mod:`opo_toolkit.stats`: Student-t intervals, p-values and the Holm adjustment.
- :mod:`opo_toolkit.provenance`: where a result comes from (machine, CPU kernels, threads,
  versions, git commit, load average): the one description every run and benchmark records.
- :mod:`opo_toolkit.runlock`: one run per output folder.

The name is the project's own (online preference optimisation) so that it cannot clash with a
package of the Python Package Index. It imports nothing from the other packages.
"""
