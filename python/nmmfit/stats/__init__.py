"""Statistics of BOLD as pure differentiable torch functions: FC, and (fcd) windowed FC / FCD.

Imported by losses, reports and plots alike; knows nothing of models or fitting."""
from .fc import fc_correlation, fc_matrix, fc_r, lower_tri, pearson

__all__ = ["fc_matrix", "lower_tri", "pearson", "fc_correlation", "fc_r"]
