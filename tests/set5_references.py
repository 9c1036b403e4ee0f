"""Set5 x4 quality references of the official pipeline, transcribed from ``specs/quality_refs.md``.

Shared by ``test_quality_golden.py`` (srbench's components, end to end) and ``test_evaluate.py`` (the eval loop
itself), so both assert the same numbers at the spec's tolerances. One torch thread, fp32 CPU, shipped LR.
"""

from __future__ import annotations

PSNR_TOL = 1e-4  # dB; the model output moves by +-1 in ~1 of 10^5 values with the CPU's summation order
SSIM_TOL = 1e-5
KEYS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")

# model -> (checkpoint file, input range, {image: (LR h, LR w, PSNR RGB, SSIM RGB, PSNR Y, SSIM Y)}, means)
GOLDEN = {
    "lgvan": (
        "team18_LGVAN.pth",
        1.0,
        {
            "baby": (128, 128, 32.3047931734, 0.8695836798, 33.8106760318, 0.8943169485),
            "bird": (72, 72, 32.5492900214, 0.9239004724, 34.7770623579, 0.9439323621),
            "butterfly": (64, 64, 27.2739888082, 0.9067587263, 28.7263593150, 0.9259507313),
            "head": (70, 70, 29.9077264711, 0.7200155235, 32.9468782122, 0.7972258972),
            "woman": (86, 57, 29.3328602177, 0.9026006469, 30.7194162470, 0.9141107754),
        },
        (30.2737317384, 0.8645718098, 32.1960784328, 0.8951073429),
    ),
    "rfdn": (
        "team00_rfdn.pth",
        255.0,
        {
            "baby": (128, 128, 32.2518554268, 0.8687142134, 33.7588666647, 0.8934849654),
            "bird": (72, 72, 32.7004531000, 0.9249773198, 34.8903901168, 0.9442247402),
            "butterfly": (64, 64, 27.2228789473, 0.9061908969, 28.6406736799, 0.9251191265),
            "head": (70, 70, 29.9213354258, 0.7204024811, 32.9556930811, 0.7973685130),
            "woman": (86, 57, 29.1753888207, 0.9014527533, 30.5490805237, 0.9127373299),
        },
        (30.2543823441, 0.8643475329, 32.1589408133, 0.8945869350),
    ),
}


def misses(got: dict[str, float], expected: tuple[float, ...]) -> dict[str, tuple[float, float]]:
    """``{metric: (got, expected)}`` for every metric of ``KEYS`` outside its tolerance (empty when all agree)."""
    return {
        key: (got[key], want)
        for key, want in zip(KEYS, expected)
        if not abs(got[key] - want) <= (PSNR_TOL if key.startswith("psnr") else SSIM_TOL)
    }
