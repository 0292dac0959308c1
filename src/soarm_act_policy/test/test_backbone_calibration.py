"""--pretrained-backbone calibrated: LeRobot ACT's frozen BatchNorm statistics set from images."""

import pytest
import torch

from soarm_act_policy.training.backbone import BackboneWeightsError, calibrate_frozen_batchnorm, load_backbone_state


def act_backbone():
    """The backbone exactly as LeRobot's ACT builds it without pretrained weights."""
    import torchvision
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    return IntermediateLayerGetter(resnet, return_layers={"layer4": "feature_map"})


def bn_outputs(backbone, images):
    from torchvision.ops.misc import FrozenBatchNorm2d

    outs = []
    # clone: the ReLU after a BatchNorm works in place
    hooks = [m.register_forward_hook(lambda m, i, o: outs.append(o.clone())) for m in backbone.modules()
             if isinstance(m, FrozenBatchNorm2d)]
    with torch.no_grad():
        backbone(images)
    for h in hooks:
        h.remove()
    return outs


def test_every_frozen_batchnorm_normalizes_its_input_after_calibration():
    backbone = act_backbone()
    images = torch.randn(24, 3, 60, 80) * 0.3 + 0.5
    before = bn_outputs(backbone, images)
    # from scratch the frozen layers are identities: the scale of the activations drifts
    assert max(abs(o.std(dim=(0, 2, 3), unbiased=False) - 1).max() for o in before) > 0.3
    n = calibrate_frozen_batchnorm(backbone, images)
    assert n == 20  # resnet18: bn1 + 2 per basic block x 8 + 3 downsample
    for o in bn_outputs(backbone, images):
        torch.testing.assert_close(o.mean(dim=(0, 2, 3)), torch.zeros(o.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(o.std(dim=(0, 2, 3), unbiased=False), torch.ones(o.shape[1]), atol=1e-3, rtol=0)
    # the statistics are buffers: the trainable parameters are untouched, and they stay frozen
    assert not any("running" in name for name, _ in backbone.named_parameters())


def test_calibrated_is_a_known_choice_without_weights_to_load():
    assert load_backbone_state("calibrated") is None
    with pytest.raises(BackboneWeightsError, match="calibrated"):
        load_backbone_state("calibratd")
