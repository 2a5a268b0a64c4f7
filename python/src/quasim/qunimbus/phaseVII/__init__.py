"""The seed's Phase VII API (``quasim.qunimbus.phaseVII``), backed by the
QuNimbus engine and ledger: every figure computed, none assumed.

This release provides :class:`ValuationEngine` and :class:`DVLLedger`;
``TrustKernel`` and ``QMPActivation`` are not in it yet.
"""

from .dvl_ledger import DVLBlock, DVLLedger
from .valuation_engine import ValuationEngine

__all__ = ["DVLBlock", "DVLLedger", "ValuationEngine"]
__version__ = "0.1.0"
