"""The frozen-backbone cache returns the backbone's own features, keeps checkpoints as they are,
and refuses a backbone that still trains."""

from __future__ import annotations

import pytest
import torch

from soarm_act_policy.training.feature_cache import FrozenBackboneCache, cache_frozen_backbone


def act_policy(image_hw=(48, 64), lr_backbone=0.0):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    h, w = image_hw
    cfg = ACTConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
                        "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, h, w))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (6,))},
        chunk_size=5, n_action_steps=5, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
        use_vae=False, dropout=0.0, pretrained_backbone_weights=None, optimizer_lr_backbone=lr_backbone, device="cpu")
    torch.manual_seed(0)
    policy = ACTPolicy(cfg)
    if lr_backbone == 0.0:
        policy.model.backbone.requires_grad_(False)
    return policy


def test_hits_return_the_backbones_features_and_misses_are_batched():
    policy = act_policy()
    backbone = policy.model.backbone
    frames = torch.randn(6, 3, 48, 64)
    with torch.no_grad():
        expected = torch.cat([backbone(frames[i : i + 1])["feature_map"] for i in range(6)])
    calls = []
    cache = cache_frozen_backbone(policy)
    inner = cache._forward
    cache._forward = lambda x: (calls.append(len(x)), inner(x))[1]

    first = backbone(frames[[0, 1, 2]])["feature_map"]  # through the module: the cache is attached
    assert calls == [3] and cache.stats.misses == 3 and cache.stats.hits == 0
    mixed = backbone(frames[[2, 3, 0, 4]])["feature_map"]  # 2 and 0 are hits, 3 and 4 go in one call
    assert calls == [3, 2] and cache.stats.hits == 2 and cache.stats.misses == 5
    torch.testing.assert_close(first, expected[[0, 1, 2]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed, expected[[2, 3, 0, 4]], rtol=1e-5, atol=1e-5)

    changed = frames[1].clone()
    changed[0, 0, 0] += 1e-3  # one value differs: a different frame, not a hit
    backbone(changed[None])
    assert calls == [3, 2, 1]


def test_losses_equal_uncached_and_state_dict_is_unchanged():
    batch = {"observation.state": torch.randn(4, 6), "observation.images.front": torch.randn(4, 3, 48, 64),
             "action": torch.randn(4, 5, 6), "action_is_pad": torch.zeros(4, 5, dtype=torch.bool)}
    plain, cached = act_policy(), act_policy()
    keys = list(cached.state_dict())
    cache = cache_frozen_backbone(cached)
    for _ in range(2):  # the second pass is all hits
        loss_plain, _ = plain.forward(batch)
        loss_cached, _ = cached.forward(batch)
        torch.testing.assert_close(loss_cached, loss_plain, rtol=1e-5, atol=1e-6)
    assert cache.stats.hits == 4 and cache.stats.misses == 4
    assert list(cached.state_dict()) == keys  # checkpoints are exactly LeRobot's
    cache.detach()
    assert "forward" not in cached.model.backbone.__dict__


def test_budget_bounds_the_stored_features():
    policy = act_policy()
    one = policy.model.backbone(torch.zeros(1, 3, 48, 64))["feature_map"]
    size = one[0].numel() * one[0].element_size()
    cache = FrozenBackboneCache(policy.model.backbone, max_bytes=2 * size).attach()
    frames = torch.randn(5, 3, 48, 64)
    out = policy.model.backbone(frames)["feature_map"]
    assert out.shape[0] == 5 and cache.stats.stored_bytes == 2 * size
    policy.model.backbone(frames)  # the two stored ones hit, the other three are computed again
    assert cache.stats.hits == 2 and cache.stats.misses == 8


def test_a_backbone_that_trains_is_not_cached():
    policy = act_policy(lr_backbone=1e-5)
    assert cache_frozen_backbone(policy) is None
    assert "forward" not in policy.model.backbone.__dict__
    with pytest.raises(ValueError, match="frozen backbone"):
        FrozenBackboneCache(policy.model.backbone)
