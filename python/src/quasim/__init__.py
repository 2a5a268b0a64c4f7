"""The seed's `quasim` namespace; QuNimbus provides :mod:`quasim.qunimbus.phaseVII`."""
