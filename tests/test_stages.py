"""Fits that generalise: gain forms, static-target and gain-prior terms, the shrinkage weight, and
staged fits (a group stage, then the subject's) with resume and clear errors."""
import numpy as np
import pytest
import torch

import nmmfit
from nmmfit.fit import fit_stages
from nmmfit.fit.stages import stage_objective
from nmmfit.losses import GainPenalty, LossInput, TargetFCLoss
from nmmfit.params.schemes import GROUP_SHRINKAGE_SCHEME, Stage
from nmmfit.sc import EXP_GAINS, TANH_GAINS, coupling_from_gains, gains_from_fc
from nmmfit.stats.baselines import shrinkage_weight
from nmmfit.stats.fc import fc_matrix
from nmmfit.experiments.protocol import subject_scheme

N = 6


def _sc(seed=0):
    rng = np.random.default_rng(seed)
    sc = rng.uniform(0.1, 1, (N, N))
    sc[rng.uniform(size=(N, N)) < 0.2] = 0
    sc = np.triu(sc, 1)
    return sc + sc.T


def _bold(seed, T=80, mix=None):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(N, N)) if mix is None else mix
    return rng.normal(size=(T, N)) @ mix


def test_target_fc_loss_is_zero_at_its_target_and_larger_away():
    sim = torch.as_tensor(_bold(1))[None]
    fc = fc_matrix(sim)[0]
    at = TargetFCLoss(fc)(LossInput(sim=sim, emp=sim))
    away = TargetFCLoss(-fc)(LossInput(sim=sim, emp=sim))
    assert float(at) == pytest.approx(0.0, abs=1e-5)
    assert float(away) > 1.0
    with pytest.raises(ValueError, match="target"):
        TargetFCLoss(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="regions"):
        TargetFCLoss(torch.eye(N + 1))(LossInput(sim=sim, emp=sim))


def test_gain_penalty_is_the_mean_square_over_sc_edges():
    model = nmmfit.RWW(_sc(), scheme="group_shrinkage", batch=2)
    w = torch.randn(2, N, N)
    model.set_gains(w)
    ref = torch.randn(N, N)
    edge = (model.sc > 0).float()
    want = (((w - ref) * edge) ** 2).sum((-2, -1)) / edge.sum()
    got = GainPenalty(ref)(LossInput(sim=None, emp=None, model=model))
    torch.testing.assert_close(got, want)
    no_gains = nmmfit.RWW(_sc(), fit_gains=False)
    with pytest.raises(ValueError, match="no SC gains"):
        GainPenalty()(LossInput(sim=None, emp=None, model=no_gains))


def test_gains_from_fc_make_the_coupling_follow_the_target():
    """Log-gains reach the target on the SC's support; the paper's tanh gains (each edge within 2x its
    SC weight) move toward it as far as their range allows."""
    sc = nmmfit.preprocess_sc(_sc(), method="max_log1p_fro")
    target = 0.3 + 0.2 * fc_matrix(torch.as_tensor(_bold(2, T=400)))      # positive, as a group FC mostly is
    edge = sc > 0
    r = {}
    for form in (EXP_GAINS, TANH_GAINS):
        W = coupling_from_gains(sc, gains_from_fc(sc, target, form)[None], form)[0]
        assert bool((W[~edge] == 0).all())
        r[form.name] = np.corrcoef(W[edge].numpy(), target[edge].numpy())[0, 1]
    r_sc = np.corrcoef(sc[edge].numpy(), target[edge].numpy())[0, 1]
    assert r["exp"] > 0.99
    assert r_sc < r["tanh"] < r["exp"]


def test_shrinkage_weight_chooses_the_data_when_it_repeats_and_the_group_when_it_does_not():
    half = _bold(3, T=60)
    repeated = np.concatenate([half, half])            # second half identical: no shrinkage
    other = _bold(4, T=60)
    group = fc_matrix(torch.as_tensor(other)).numpy()
    assert shrinkage_weight(repeated[None], group)[0] == 0.0
    drift = np.concatenate([_bold(5, T=60), other])    # second half is the group's pattern
    assert shrinkage_weight(drift[None], group)[0] == 1.0
    with pytest.raises(ValueError, match="frames"):
        shrinkage_weight(np.zeros((1, 4, N)), group)


def test_stage_objective_swaps_window_terms_for_the_target_and_carries_hyperparameters():
    model = nmmfit.RWW(_sc(), scheme="group_shrinkage", batch=2)
    target = np.stack([np.eye(N)] * 2)
    first = stage_objective(model, Stage("group", target="group"), target, None, None)
    assert "fc" not in first.terms and "target_fc" in first.terms and "gain_penalty" not in first.terms
    with torch.no_grad():
        first.terms["bifurcation"].ca.fill_(3.0)
    second = stage_objective(model, Stage("subject", target="shrink", gain_penalty=0.1), target, first,
                             torch.zeros(2, N, N))
    assert second.weights["gain_penalty"] == 0.1
    assert float(second.terms["bifurcation"].ca.detach()[0]) == 3.0
    assert second.terms["bifurcation"] is not first.terms["bifurcation"]
    window = stage_objective(model, Stage(), None, None, None)
    assert "fc" in window.terms and "target_fc" not in window.terms


def test_stage_rejects_bad_values():
    with pytest.raises(ValueError, match="target"):
        Stage(target="session")
    with pytest.raises(ValueError, match="gain_penalty"):
        Stage(gain_penalty=-1.0)
    with pytest.raises(TypeError, match="epochs"):
        Stage(epochs=1.5)


STAGES = (Stage("group", target="group", epochs=1, frames=60, gains_from_target=True, lr_scale={"g": 100.0}),
          Stage("subject", target="shrink", epochs=1, gain_penalty=0.1))
SETTINGS = dict(window=10, test_windows=2, burn_in_windows=1, average_last=3)


def _staged_model():
    return nmmfit.RWW(_sc(), scheme="group_shrinkage", batch=2, seed=3)


def test_staged_fit_runs_each_stage_from_the_previous_estimate_and_resumes(tmp_path):
    bold, held = _bold(6, T=40), _bold(7, T=40)
    group = fc_matrix(torch.as_tensor(_bold(8, T=400))).numpy()
    res = fit_stages(_staged_model(), bold, stages=STAGES, group_fc=group, heldout=held, out_dir=tmp_path,
                     **SETTINGS)
    names = [s["name"] for s in res.extra["stages"]]
    assert names == ["group", "subject"]
    a = res.extra["stages"][1]["shrinkage"]
    assert len(a) == 2 and all(0.0 <= x <= 1.0 for x in a)
    assert (tmp_path / "stages" / "1-group" / "result.json").is_file()
    assert (tmp_path / "result.json").is_file()
    assert res.heldout_r is not None and set(res.baselines) == {"sc_fc", "group_fc", "ceiling"}
    assert "gain_penalty" in res.config["objective"] and "fc" not in res.config["objective"]
    again = fit_stages(_staged_model(), bold, stages=STAGES, group_fc=group, heldout=held, out_dir=tmp_path,
                       resume=True, **SETTINGS)
    for k in res.fitted:
        np.testing.assert_array_equal(again.fitted[k], res.fitted[k])
    with pytest.raises(FileExistsError, match="previous run"):
        fit_stages(_staged_model(), bold, stages=STAGES, group_fc=group, out_dir=tmp_path, **SETTINGS)


def test_staged_fit_without_group_fc_names_the_argument():
    with pytest.raises(ValueError, match="group_fc"):
        fit_stages(_staged_model(), _bold(6, T=40), stages=STAGES, **SETTINGS)


def test_subject_scheme_defaults_to_group_shrinkage_only_with_a_group():
    assert subject_scheme(has_group=True) is GROUP_SHRINKAGE_SCHEME
    assert subject_scheme(has_group=False).name == "griffiths2022"
    assert subject_scheme("griffiths2022", has_group=True).name == "griffiths2022"
    assert subject_scheme(None, "deco2014").name == "deco2014"
    with pytest.raises(ValueError, match="scheme"):
        subject_scheme("nope")
