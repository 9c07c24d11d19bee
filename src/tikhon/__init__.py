"""tikhon: fast solvers for L2-regularized (Tikhonov) logistic and ridge regression.

>>> import tikhon
>>> X, y = tikhon.datasets.load_a9a()
>>> model = tikhon.LogisticRegression(C=1.0).fit(X, y)
>>> round(model.score(X, y), 3)
0.85
"""
from . import datasets
from ._config import config_context, get_config, set_config
from ._io import load_model as load
from .backends import BackendUnavailableError, available_backends, backend_names
from .cv import LogisticRegressionCV, RidgeCV
from .estimators import LogisticRegression, Ridge
from .objective import Objective
from .path import PathResult, regularization_path

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "LogisticRegression",
    "LogisticRegressionCV",
    "Objective",
    "PathResult",
    "Ridge",
    "RidgeCV",
    "__version__",
    "available_backends",
    "backend_names",
    "config_context",
    "datasets",
    "get_config",
    "load",
    "regularization_path",
    "set_config",
]
