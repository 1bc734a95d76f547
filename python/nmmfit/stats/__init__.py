"""Statistics of BOLD as pure functions: FC (torch, differentiable), windowed FC / FCD with the KS
statistic and a differentiable Wasserstein-1 distance (fcd), and the baselines a fit is judged
against (baselines: numpy). Imported by losses, evaluation, reports and plots alike; knows nothing
of models or fitting."""
from .baselines import fc_baselines, subject_specific_r, tri_r
from .fc import fc_correlation, fc_matrix, fc_r, lower_tri, pearson
from .fcd import fcd, fcd_values, ks_distance, wasserstein1, window_fc, window_frames

__all__ = ["fc_matrix", "lower_tri", "pearson", "fc_correlation", "fc_r", "window_frames", "window_fc", "fcd",
           "fcd_values", "ks_distance", "wasserstein1", "tri_r", "fc_baselines", "subject_specific_r"]
