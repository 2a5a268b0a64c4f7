"""QuNimbus under the seed's import path; see :mod:`quasim.qunimbus.phaseVII`."""
