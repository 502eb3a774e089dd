"""CosFace / ArcFace / binary heads against hand-computed values."""

import math

import pytest
import torch

from _finetune_fixtures import _one_torch_thread  # noqa: F401 (autouse fixture)

from overspec.errors import UserError
from overspec.models.heads import (ArcFaceHead, BinaryHead, CosFaceHead, HeadConfig, attack_scores, build_head,
                                   head_from_card, head_tensors)


def _margin_head(cls, s, m):
    head = cls(embed_dim=2, num_classes=2, s=s, m=m)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # normalised: e1, e2
    return head


EMB = torch.tensor([[3.0, 4.0]])  # normalised: (0.6, 0.8) -> cos = (0.6, 0.8)


def test_cosface_logits_by_hand():
    head = _margin_head(CosFaceHead, s=64.0, m=0.35)
    logits = head(EMB, torch.tensor([1]))
    assert logits.tolist()[0] == pytest.approx([64 * 0.6, 64 * (0.8 - 0.35)], abs=1e-4)  # [38.4, 28.8]
    assert head(EMB).tolist()[0] == pytest.approx([38.4, 51.2], abs=1e-4)  # no labels: no margin


def test_arcface_logits_by_hand():
    head = _margin_head(ArcFaceHead, s=64.0, m=0.5)
    logits = head(EMB, torch.tensor([0]))
    # cos(acos(0.6) + 0.5) = 0.6 cos 0.5 - 0.8 sin 0.5 = 0.1430092
    assert logits[0, 0].item() == pytest.approx(64 * 0.1430092, abs=1e-3)
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(math.acos(0.6) + 0.5), abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(64 * 0.8, abs=1e-4)


def test_arcface_past_pi_falls_back_to_monotone_margin():
    head = _margin_head(ArcFaceHead, s=1.0, m=0.5)
    emb = torch.tensor([[-0.95, math.sqrt(1 - 0.95 ** 2)]])  # theta = 2.824 rad, theta + m > pi
    logit = head(emb, torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(-0.95 - math.sin(math.pi - 0.5) * 0.5, abs=1e-5)


def test_margin_loss_is_cross_entropy_of_margin_logits():
    head = _margin_head(CosFaceHead, s=10.0, m=0.2)
    logits = head(EMB, torch.tensor([1]))
    assert logits.tolist()[0] == pytest.approx([6.0, 6.0], abs=1e-5)  # 10 * 0.6 and 10 * (0.8 - 0.2)
    assert head.loss(logits, torch.tensor([1])).item() == pytest.approx(math.log(2), abs=1e-5)


def test_arcface_gradient_is_finite_at_the_class_centre():
    head = _margin_head(ArcFaceHead, s=64.0, m=0.5)
    emb = torch.tensor([[1.0, 0.0]], requires_grad=True)  # cos = 1 exactly
    head.loss(head(emb, torch.tensor([0])), torch.tensor([0])).backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


def test_binary_head_bce_onehot_by_hand():
    head = BinaryHead(embed_dim=2, loss="bce_onehot")
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.linear.bias.copy_(torch.tensor([0.5, -0.5]))
    logits = head(EMB)  # normalised (0.6, 0.8) -> (1.1, 0.3)
    assert logits.tolist()[0] == pytest.approx([1.1, 0.3], abs=1e-6)
    softplus = lambda x: math.log1p(math.exp(x))
    # target bona fide (1) -> one-hot (0, 1): mean(softplus(1.1), softplus(-0.3))
    assert head.loss(logits, torch.tensor([1])).item() == pytest.approx((softplus(1.1) + softplus(-0.3)) / 2, abs=1e-6)
    assert attack_scores(head, EMB).item() == pytest.approx(math.exp(0.3) / (math.exp(1.1) + math.exp(0.3)), abs=1e-6)
    ce = BinaryHead(2, loss="ce")
    ce.load_state_dict(head.state_dict())
    assert ce.loss(logits, torch.tensor([1])).item() == pytest.approx(math.log1p(math.exp(0.8)), abs=1e-6)


def test_head_round_trip_through_card_and_tensors():
    for config, classes in ((HeadConfig("cosface", s=30, m=0.3), 5), (HeadConfig("arcface", s=64, m=0.5), 3),
                            (HeadConfig("binary"), 2)):
        head = build_head(config, embed_dim=4, num_classes=classes)
        rebuilt = head_from_card(config.to_card(4, classes), head_tensors(head))
        x, y = torch.randn(6, 4), torch.randint(0, classes, (6,))
        assert torch.equal(rebuilt(x, y), head(x, y))


def test_head_config_errors():
    with pytest.raises(UserError, match="unknown"):
        HeadConfig("sphereface")
    with pytest.raises(UserError, match="exactly 2 classes"):
        build_head(HeadConfig("binary"), 4, 3)
