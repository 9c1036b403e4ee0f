"""The built-in zoo's specs, without importing torch: each builder is a :class:`LazyBuilder` naming the function
in the architecture module (``lgvan.py``, ``rfdn.py``, ``dlgsanet.py``) that builds the network.
"""

from __future__ import annotations

from sr_bench.zoo.registry import CheckpointSpec, LazyBuilder, ModelSpec, register


register(
    ModelSpec(
        name="lgvan",
        builder=LazyBuilder("sr_bench.zoo.lgvan:build"),
        scales=(4,),
        data_range=1.0,
        description="LGVAN, NTIRE 2023 Efficient SR, team 18 (local-global convolutional attention)",
        checkpoints={
            4: CheckpointSpec(
                file="team18_LGVAN.pth",
                url="https://github.com/charonf/LGVAN-NTIRE2023-ESR/raw/main/model_zoo/team18_LGVAN.pth",
                sha256="fe201971de6fb18e62fd17d7c10817cf406d68b7aa2adb5f00474a066b05e0ec",
                key="params_ema",
            )
        },
        param_counts={4: 118_243},
        source="https://github.com/charonf/LGVAN-NTIRE2023-ESR (NTIRE 2023 ESR, team 18)",
        reference={
            "x4/ntire2023/params": 118_243,
            "x4/ntire2023/flops_hooks": 9_057_572_992,
            "x4/ntire2023/flops_fvcore": 9_036_601_472,
            "x4/ntire2023/activations": 332_392_832,
            "x4/ntire2023/num_conv": 122,
            "x4/ntire2023/div2k_valid_psnr_rgb_db": 28.996871781479403,
            "x4/ntire2023/div2k_valid_runtime_ms": 80.19443962097168,
            "x4/ntire2023/div2k_valid_memory_mib": 1114.7724609375,
            "x4/factsheet/div2k_valid_psnr_rgb_db": 29.00,
            "x4/factsheet/div2k_test_psnr_rgb_db": 27.07,
            "x4/factsheet/runtime_ms_v100": 43.28,
            "x4/factsheet/memory_mib_v100": 1114.72,
        },
    )
)


register(
    ModelSpec(
        name="rfdn",
        builder=LazyBuilder("sr_bench.zoo.rfdn:build"),
        scales=(4,),
        data_range=255.0,
        description="RFDN, the NTIRE 2022/2023 Efficient SR baseline (residual feature distillation)",
        checkpoints={
            4: CheckpointSpec(
                file="team00_rfdn.pth",
                url="https://github.com/ofsoundof/NTIRE2023_ESR/raw/main/model_zoo/team00_rfdn.pth",
                sha256="11af8ec8ebd68689e90ef1e29044f9804c72d3bd9f7573820b7b26035782760c",
            )
        },
        param_counts={4: 433_448},
        paper="Residual Feature Distillation Network for Lightweight Image Super-Resolution (Liu et al., ECCVW 2020)",
        source="https://github.com/ofsoundof/NTIRE2023_ESR (NTIRE 2023 ESR baseline, team 00)",
        reference={
            "x4/ntire2023/params": 433_448,
            "x4/ntire2023/flops_hooks": 27_102_622_560,
            "x4/ntire2023/flops_fvcore": 27_046_231_296,
            "x4/ntire2023/activations": 112_034_240,
            "x4/ntire2023/num_conv": 64,
            "x4/ntire2023/div2k_valid_psnr_rgb_db": 29.041133271361115,
            "x4/ntire2023/div2k_valid_runtime_ms": 39.3906377696991,
            "x4/ntire2023/div2k_valid_memory_mib": 788.1298828125,
        },
    )
)


# DLGSANet
_PAPER = ("DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image Super-Resolution "
          "(Li, Pan, Tang, Dong, ICCV 2023)")
_SOURCE = "https://github.com/NeonLeexiang/DLGSANet"
_NOTE = ("the authors publish their (re-trained) lightweight checkpoints only on Google Drive / Baidu Netdisk "
         f"(links in the README of {_SOURCE}): download it by hand and put it in a weights folder as {{file}}")


def _checkpoints(variant: str) -> dict[int, CheckpointSpec]:
    files = {s: f"dlgsanet_{variant}_x{s}.pth" for s in (2, 3, 4)}
    return {s: CheckpointSpec(file=f, note=_NOTE.format(file=f)) for s, f in files.items()}


register(
    ModelSpec(
        name="dlgsanet-tiny",
        builder=LazyBuilder("sr_bench.zoo.dlgsanet:dlgsanet_tiny"),
        scales=(2, 3, 4),
        data_range=1.0,
        description="DLGSANet-Tiny: dynamic local conv + ReLU channel attention, 3 groups, TLC at test time",
        default_scale=4,
        checkpoints=_checkpoints("tiny"),
        param_counts={2: 565_710, 3: 572_205, 4: 581_298},
        paper=_PAPER,
        source=_SOURCE,
    )
)

register(
    ModelSpec(
        name="dlgsanet-light",
        builder=LazyBuilder("sr_bench.zoo.dlgsanet:dlgsanet_light"),
        scales=(2, 3, 4),
        data_range=1.0,
        description="DLGSANet-Light: dynamic local conv + ReLU channel attention, 4 groups, TLC at test time",
        default_scale=4,
        checkpoints=_checkpoints("light"),
        param_counts={2: 745_188, 3: 751_683, 4: 760_776},
        paper=_PAPER,
        source=_SOURCE,
    )
)
