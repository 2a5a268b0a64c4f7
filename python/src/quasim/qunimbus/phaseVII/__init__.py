"""The seed's Phase VII API (``quasim.qunimbus.phaseVII``), backed by the
QuNimbus engine and ledger: every figure computed, none assumed.

Each class the seed documents: :class:`QMPActivation`,
:class:`ValuationEngine`, :class:`DVLLedger`, :class:`TrustKernel`.
"""

from .dvl_ledger import DVLBlock, DVLLedger
from .qmp_activation import QMPActivation
from .trust_kernel import TrustKernel
from .valuation_engine import ValuationEngine

__all__ = ["DVLBlock", "DVLLedger", "QMPActivation", "TrustKernel", "ValuationEngine"]
__version__ = "0.1.0"
