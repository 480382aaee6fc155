"""Training: balancing, validation split, early stopping, seeds, warm start, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specscout.learn.train import (
    Fitted,
    TrainConfig,
    _loss,
    class_weights,
    fit,
    fit_temperature,
    stratified_split,
)

CLASSES = ("other", "emission", "double-peak")


def _data(n=360, seed=0):
    """Spectra on 140 points: class 1 has one bump, class 2 two, class 0 none; 70/20/10 %."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    x = rng.normal(0, 0.3, (n, 140)).astype(np.float32)
    grid = np.arange(140)
    bump = lambda c: np.exp(-0.5 * ((grid - c) / 3.0) ** 2)  # noqa: E731
    x[y == 1] += bump(70)
    x[y == 2] += bump(62) + bump(78)
    return x, y


def test_stratified_split_and_weights():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    train, val = stratified_split(y, 0.2, np.random.default_rng(0))
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100
    assert np.bincount(y[val]).tolist() == [16, 3, 1]
    assert class_weights(y, 3) == pytest.approx([100 / 240, 100 / 45, 100 / 15])


def test_fit_learns_stops_early_and_is_reproducible(tmp_path):
    x, y = _data()
    config = TrainConfig(model="small-cnn", max_epochs=40, patience=4, seed=3, threads=2)
    a = fit(x, y, CLASSES, config)
    assert a.best_epoch < len(a.history) <= 40  # stopped on the validation loss
    with torch.inference_mode():
        pred = a.model(torch.as_tensor(x[a.val_rows])).argmax(1).numpy()
    assert (pred == y[a.val_rows]).mean() > 0.9
    assert 0.05 < a.temperature < 20
    b = fit(x, y, CLASSES, config)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    a.save(tmp_path / "m.pt")
    c = Fitted.load(tmp_path / "m.pt")
    with torch.inference_mode():
        np.testing.assert_array_equal(c.model(torch.as_tensor(x[:5])).numpy(),
                                      a.model(torch.as_tensor(x[:5])).numpy())
    assert c.temperature == a.temperature and c.classes == CLASSES
    # Warm start from the fitted weights: the first epoch is already good.
    warm = fit(x, y, CLASSES, TrainConfig(model="small-cnn", max_epochs=2, patience=1, seed=3),
               warm_start=a.model.state_dict())
    assert warm.history[0]["epoch"] == 0  # the start, validated before any epoch
    assert warm.history[1]["val_loss"] < a.history[0]["val_loss"]
    # epochs that only make it worse (a step far too long) leave the start as it was
    worse = fit(x, y, CLASSES, TrainConfig(model="small-cnn", max_epochs=2, patience=1, seed=3,
                                           learning_rate=50.0),
                warm_start=a.model.state_dict())
    assert worse.best_epoch == 0 and len(worse.history) > 1
    for name, value in a.model.state_dict().items():
        np.testing.assert_array_equal(worse.model.state_dict()[name].numpy(), value.numpy())


def test_balanced_sampling_also_learns():
    x, y = _data(seed=1)
    fitted = fit(x, y, CLASSES, TrainConfig(model="small-cnn", max_epochs=15, patience=3,
                                            balance="sample", seed=0))
    with torch.inference_mode():
        pred = fitted.model(torch.as_tensor(x)).argmax(1).numpy()
    assert (pred[y == 2] == 2).mean() > 0.8  # the rarest class is found


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    logits = rng.normal(0, 1, (2000, 3))
    logits[np.arange(2000), y] += 1.0
    t = fit_temperature(logits * 5.0, y)  # the same logits, made 5x overconfident
    assert t == pytest.approx(5.0 * fit_temperature(logits, y), rel=0.05)


def test_one_class_is_refused():
    x, _ = _data(40)
    with pytest.raises(ValueError, match="two classes"):
        fit(x, np.zeros(40, int), CLASSES, TrainConfig(model="small-cnn", max_epochs=1))


def test_moving_average_of_the_weights_is_kept():
    x, y = _data(seed=2)
    raw = TrainConfig(model="small-cnn", max_epochs=15, patience=15, seed=5, threads=2,
                      average_epochs=0)
    averaged = TrainConfig(model="small-cnn", max_epochs=15, patience=15, seed=5, threads=2,
                           average_epochs=1.0)
    a, b = fit(x, y, CLASSES, raw), fit(x, y, CLASSES, averaged)
    # the same steps were taken (same seed), but what is kept is their average
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["val_loss"] for h in a.history] != [h["val_loss"] for h in b.history]
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert set(wa) == set(wb) and any(not torch.equal(wa[k], wb[k]) for k in wa)
    with torch.inference_mode():
        pred = b.model(torch.as_tensor(x[b.val_rows])).argmax(1).numpy()
    assert (pred == y[b.val_rows]).mean() > 0.9
    # the network returned is the one validated at its best epoch
    train_rows = np.setdiff1d(np.arange(len(y)), b.val_rows)
    class_w = torch.as_tensor(class_weights(y[train_rows], 3), dtype=torch.float32)
    val_loss = _loss(b.model, torch.as_tensor(x[b.val_rows]), torch.as_tensor(y[b.val_rows]),
                     torch.ones(len(b.val_rows)), class_w, 1024)
    assert val_loss == pytest.approx(b.history[b.best_epoch - 1]["val_loss"], rel=1e-5)
    again = fit(x, y, CLASSES, averaged).history  # reproducible, but for the time taken
    assert [{**h, "seconds": 0} for h in again] == [{**h, "seconds": 0} for h in b.history]
    with pytest.raises(ValueError, match="average_epochs"):
        TrainConfig(average_epochs=-1)


def test_a_network_saved_before_averaging_loads_as_not_averaged(tmp_path):
    x, y = _data(120)
    fitted = fit(x, y, CLASSES, TrainConfig(model="small-cnn", max_epochs=1, seed=0))
    fitted.save(tmp_path / "m.pt")
    d = torch.load(tmp_path / "m.pt", weights_only=True)
    assert d["config"]["average_epochs"] == 1.0
    del d["config"]["average_epochs"]  # as written before the setting existed
    torch.save(d, tmp_path / "old.pt")
    assert Fitted.load(tmp_path / "old.pt").config.average_epochs == 0.0
    assert Fitted.load(tmp_path / "m.pt").config.average_epochs == 1.0
    # settings that today's bounds refuse, as an older version saved them: still loads
    d["config"].update(patience=0, threads=0, device="mps")
    torch.save(d, tmp_path / "older.pt")
    assert Fitted.load(tmp_path / "older.pt").config.patience == 0


def test_the_product_form_of_the_convolutions_is_the_same_function_and_gradient():
    from specscout.learn.model import as_products, build

    torch.manual_seed(3)
    model = build("paper-cnn", 140, 3)
    x = torch.randn(16, 140)
    grads = []
    for form in (lambda: model.features(x.unsqueeze(1)), lambda: as_products(model.features, x)):
        model.zero_grad()
        out = form()
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        grads.append([p.grad.clone() for p in model.features.parameters()])
        grads[-1].append(out.detach())
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # training mode uses it on the CPU; evaluation is the module's own
    model.train()
    torch.manual_seed(0)
    trained = model(x)
    model.eval()
    assert trained.shape == model(x).shape == (16, 3)
    with pytest.raises(TypeError, match="no product form"):
        as_products(torch.nn.Sequential(torch.nn.Conv1d(1, 4, 5)), x)
