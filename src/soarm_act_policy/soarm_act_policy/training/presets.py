"""Training defaults and named presets (plain data, no imports of LeRobot or ROS).

Order of precedence when the CLI builds a run: ``DEFAULTS`` < ``PRESETS[--config]`` <
flags given explicitly on the command line.

``DEFAULTS`` are the flags users know from the SO-101 ACT training script (batch 8,
100k steps, chunk 100, lr 1e-5, KL weight 10, ...), which are also LeRobot's ACT
defaults. ``baseline`` and ``large`` are the two GPU configurations of the ACT training
guide (dim 512/1024, 8/16 heads, 4/6 encoder layers, latent 32/64, lr 1e-5/5e-6,
backbone lr 1e-5/1e-6). ``cpu`` is a small model for the simulated demo on a 2-core CPU
(96x128 images), sized by measurement (see benchmarks/bench_train.py).
"""

from __future__ import annotations

DEFAULTS: dict[str, object] = {
    # data loading / loop
    "batch_size": 8,
    "steps": 100_000,
    "num_workers": 4,
    "seed": 1000,
    "log_freq": 250,
    "save_freq": 5000,
    "progress_bar": True,
    "max_minutes": None,
    # ACT
    "chunk_size": 100,
    "n_action_steps": 100,
    "lr": 1e-5,
    "lr_backbone": 1e-5,
    # constant (ACT's own preset) | cosine: LeRobot's cosine decay to lr/10 over --steps
    "lr_schedule": "constant",
    "weight_decay": 1e-4,
    "kl_weight": 10.0,
    "dropout": 0.1,
    "vision_backbone": "resnet18",
    "dim_model": 512,
    "n_heads": 8,
    "dim_feedforward": 3200,
    "n_encoder_layers": 4,
    "n_decoder_layers": 1,
    "use_vae": True,
    "latent_dim": 32,
    "n_vae_encoder_layers": 4,
    "pretrained_backbone": "imagenet",
    "device": "auto",
    "torch_threads": 0,  # 0: torch's default (one per core)
    # a frozen backbone (lr_backbone 0) computes each distinct frame's features once
    "cache_frozen_backbone": True,
    # without image augmentation, each training sample's frames are decoded once (kept as uint8)
    "cache_decoded_frames": True,
    # wandb
    "wandb_enable": False,
    "wandb_project": "soarm-act-training",
    "wandb_entity": None,
    "wandb_notes": None,
}

PRESETS: dict[str, dict[str, object]] = {
    # ACT training guide, "Baseline Configuration" (~8-12 h on an RTX 3090).
    "baseline": {
        "steps": 100_000,
        "batch_size": 8,
        "lr": 1e-5,
        "lr_backbone": 1e-5,
        "chunk_size": 100,
        "dim_model": 512,
        "n_heads": 8,
        "n_encoder_layers": 4,
        "n_decoder_layers": 1,
        "latent_dim": 32,
        "use_vae": True,
        "kl_weight": 10.0,
    },
    # ACT training guide, "Large Configuration" (~20-30 h on an RTX 3090).
    "large": {
        "steps": 200_000,
        "batch_size": 8,
        "lr": 5e-6,
        "lr_backbone": 1e-6,
        "chunk_size": 100,
        "dim_model": 1024,
        "n_heads": 16,
        "n_encoder_layers": 6,
        "n_decoder_layers": 1,
        "latent_dim": 64,
        "use_vae": True,
        "kl_weight": 10.0,
    },
    # Small and fast: the simulated end-to-end demo on a 2-core CPU with small images. No
    # ImageNet download (works offline); a higher learning rate than the GPU presets because
    # the run is a few thousand steps, not 100k. Sized by measurement (docs/benchmarks.md,
    # "CPU preset"): with the backbone pretrained and frozen (cached features), a width-128
    # transformer without the VAE did 5000 updates in ~8 min (shared machine) and succeeded 9/10 on
    # unseen scenes, where the width-256 VAE model got 0-3/10 from the ~2500 updates it could
    # do in 13 min. The demonstrations are a scripted expert's (one mode per scene): the VAE
    # that ACT uses for multimodal human data only adds noise here.
    # Dropout stays at ACT's 0.1: without it, checkpoints 1000 updates apart swung between 0 and
    # 70-85 % in closed loop (the policy stopped using where the cube is); with it, on the same
    # two datasets, backbones and seeds, 4 of the 8 checkpoints from update 3000 on succeeded on
    # >= 80 % of 20 unseen scenes (docs/benchmarks.md, "Dropout").
    "cpu": {
        "steps": 5000,
        "batch_size": 8,
        "num_workers": 1,
        "lr": 1e-4,
        "lr_backbone": 1e-4,
        "chunk_size": 30,
        "n_action_steps": 30,
        "dim_model": 128,
        "n_heads": 4,
        "dim_feedforward": 512,
        "n_encoder_layers": 2,
        "n_decoder_layers": 1,
        "latent_dim": 16,
        "n_vae_encoder_layers": 2,
        "use_vae": False,
        "kl_weight": 10.0,
        "dropout": 0.1,
        "log_freq": 50,
        "save_freq": 1000,
        "pretrained_backbone": "calibrated",
        "device": "cpu",
        # One intra-op thread + one dataloader worker: on 2 shared cores, 2 OpenMP threads
        # stall badly under contention (measured 6-15 s/step vs 1.1-1.6 s/step with 1).
        "torch_threads": 1,
    },
}
