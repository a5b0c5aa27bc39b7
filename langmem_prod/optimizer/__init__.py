"""The context optimizer: keep what matters of a long conversation within a token budget."""

from langmem_prod.optimizer._flow import OptimizeResult, OptimizeStats, message_key
from langmem_prod.optimizer._llm import MessageScore, ScoreBatch
from langmem_prod.optimizer._select import BudgetTooSmallError
from langmem_prod.optimizer.node import OptimizerState
from langmem_prod.optimizer.optimizer import ContextOptimizer, optimize_messages

__all__ = [
    "BudgetTooSmallError",
    "ContextOptimizer",
    "MessageScore",
    "OptimizeResult",
    "OptimizeStats",
    "OptimizerState",
    "ScoreBatch",
    "message_key",
    "optimize_messages",
]
