"""pretrain_backbone: labelled sim frames -> a ResNet18 trunk that ACT's backbone loads."""

import json

import numpy as np
import pytest

from soarm_act_policy.training.pretrain_backbone import (
    LABELS,
    PretrainError,
    PretrainSettings,
    label_vector,
    learning_rate_factor,
    main,
    pretrain,
)

pytestmark = pytest.mark.slow


def test_learning_rate_warms_up_holds_then_decays_to_five_percent():
    assert learning_rate_factor(0, 0.0) == pytest.approx(0.1)
    assert learning_rate_factor(9, 0.1) == 1.0
    assert learning_rate_factor(500, 0.6) == 1.0
    assert learning_rate_factor(500, 0.8) == pytest.approx(0.5)
    assert learning_rate_factor(500, 1.0) == pytest.approx(0.05)


def test_labels_are_world_positions_and_the_cube_seen_from_the_jaws():
    info = {"cube_position": [0.2, -0.05, 0.0125], "cube_yaw": 0.1, "zone_position": [0.22, 0.07, 0.0],
            "jaw_point": [0.15, 0.0, 0.05]}
    v = label_vector(info)
    assert len(v) == len(LABELS)
    np.testing.assert_allclose(v, [0.2, -0.05, 0.1, 0.22, 0.07, 0.05, -0.05, -0.0375])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from soarm_act_policy.training.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "ds"
    make_synthetic_dataset(root, repo_id="local/pretrain", episodes=2, frames=10, width=64, height=48)
    return root


def test_pretrained_trunk_loads_into_acts_backbone(dataset, tmp_path):
    import torch
    import torchvision
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops.misc import FrozenBatchNorm2d

    from soarm_act_policy.training.backbone import load_backbone_state

    out = tmp_path / "bb.safetensors"
    report = pretrain(dataset, out, PretrainSettings(samples=24, minutes=5.0, max_epochs=1, batch_size=8,
                                                     env_kwargs={"sim": {"scene_spread": 0.3}}))
    assert report["image_size"] == [64, 48] and report["cameras"] == ["front", "wrist"]
    assert report["steps"] == 3 and report["epochs"] == 1  # 22 training frames in batches of 8, 8, 6
    assert set(report["held_out_mean_abs_error"]) == {"front", "wrist"}
    assert json.loads(out.with_name(out.name + ".json").read_text())["held_out"] == 2
    assert not out.with_name(out.name + ".tmp").exists()

    state = load_backbone_state(str(out), "resnet18")  # the loader `train --pretrained-backbone` uses
    # BatchNorm statistics were learnt from the rendered frames (not torchvision's 0/1 defaults)
    assert float(state["bn1.running_var"].sub(1).abs().max()) > 1e-3
    act_trunk = IntermediateLayerGetter(torchvision.models.resnet18(weights=None, norm_layer=FrozenBatchNorm2d),
                                        return_layers={"layer4": "feature_map"})
    act_trunk.load_state_dict(state, strict=True)
    torch.testing.assert_close(act_trunk.conv1.weight, state["conv1.weight"])


def test_bad_dataset_is_refused_with_the_reason(tmp_path, capsys):
    with pytest.raises(PretrainError, match="meta/info.json"):
        pretrain(tmp_path / "nothing", tmp_path / "bb.safetensors", PretrainSettings(samples=20))
    assert main(["--dataset-root", str(tmp_path / "nothing"), "--output", str(tmp_path / "bb.safetensors")]) == 2
    assert "not a readable LeRobot dataset" in capsys.readouterr().err
    assert not (tmp_path / "bb.safetensors").exists()
