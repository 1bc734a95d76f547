"""Composable loss terms (base: the protocol and the objective; paper: Griffiths et al. 2022's
terms; moments: simulated-moments terms; target: a static target FC and a prior on the SC gains;
dynamics: FCD, FC mean, firing rate, regional priors, cuBNM's cost; synthetic: the
synthetic-likelihood discrepancy). Imports: stats only."""
from .base import LossInput, LossTerm, Objective, default_objective, with_weights
from .dynamics import (FCDLoss, FCMeanLoss, FiringRateLoss, RegionalPrior, cubnm_cost, deco2014_objective,
                       mean_rate_E)
from .moments import (BoldACFLoss, BoldLogSDLoss, BoldMeanLoss, FCMSELoss, moments_objective)
from .paper import (BifurcationLoss, BoldMSELoss, EntropyLoss, FCCorrelationLoss, FCRMSELoss, GaussianPrior,
                    griffiths2022_objective)
from .synthetic import SyntheticLikelihoodLoss
from .target import GainPenalty, TargetFCLoss

__all__ = ["LossInput", "LossTerm", "FCCorrelationLoss", "FCRMSELoss", "BoldMSELoss", "BoldMeanLoss",
           "BoldLogSDLoss", "BoldACFLoss", "FCMSELoss", "EntropyLoss", "BifurcationLoss", "GaussianPrior",
           "TargetFCLoss", "GainPenalty", "SyntheticLikelihoodLoss", "Objective", "griffiths2022_objective",
           "moments_objective", "default_objective", "with_weights",
           "FCDLoss", "FCMeanLoss", "FiringRateLoss", "RegionalPrior", "deco2014_objective", "cubnm_cost", "mean_rate_E"]
