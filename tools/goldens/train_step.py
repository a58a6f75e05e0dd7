#!/usr/bin/env python3
"""Geo-alignment training-step goldens: G3's objective and optimiser in PyTorch on a tiny model.

G3's trainer (`run_G3.py`, `utils/G3.py`) runs frozen CLIP towers, then trains four heads, the
GPS encoder and the temperatures with AdamW and StepLR. g3-rs trains from cached CLIP features
(the projected image and text features, `vision_projection(pooled)` and
`text_projection(pooled)`), so these goldens start there. The model here has G3's structure and
key names at a small size:

- features: 16 (CLIP's projection width, 768 in G3);
- location encoder: geoclip's LocationEncoder, sigmas 2^0, 2^4, 2^8, 8 random frequencies,
  hidden 24 x 3, output 12; Mercator input as G3 computes it (pyproj, float32);
- heads: vision_projection_else_1/2 and text_projection_else 16 -> 16 -> 16,
  location_projection_else 12 -> 12 -> 16;
- logit_scale1..3 = 3.99 (logit_scale3 is unused by the loss, as in G3).

Loss (IMG+GPS+TEXT, G3's default) = clip_loss(text . image^T * exp(logit_scale1))
  + clip_loss(location . image^T * exp(logit_scale2)); IMG+GPS keeps only the second term.
clip_loss(L) = (CE(L, arange) + CE(L^T, arange)) / 2. Optimiser: torch.optim.AdamW over the
parameters that require gradients (those without a gradient are skipped, as in PyTorch), then
StepLR(step_size=1, gamma) between the two steps, as an epoch boundary does.

Writes g3-align/tests/fixtures/train_step/:

- initial.safetensors       the starting weights, G3's state-dict keys (PyTorch layouts)
- batches.safetensors       batch{0,1}.image_features [8, 16], .text_features [8, 16],
                            .coordinates [8, 2] (LAT, LON degrees), .mercator_input [8, 2]
- scenarios.json            each scenario's variant and optimiser settings
- {scenario}.safetensors    losses [2] (before each step), loss_terms [2, 2] (image-text,
                            image-GPS per step; 0 when unused), grad.{key} (first step) and
                            step1.{key}, step2.{key}: every weight after each step

    python3 -m venv /tmp/g3-goldens && /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt
    /tmp/g3-goldens/bin/pip install --no-deps geoclip==1.3.0
    /tmp/g3-goldens/bin/python tools/goldens/train_step.py
"""

import json
from pathlib import Path

import geoclip
import numpy as np
import pyproj
import safetensors
import torch
from geoclip.model.location_encoder import LocationEncoder
from safetensors.torch import save_file

assert torch.__version__.split("+")[0] == "2.15.0", torch.__version__
assert pyproj.__version__ == "3.7.2", pyproj.__version__
assert np.__version__ == "2.4.6", np.__version__
assert safetensors.__version__ == "0.8.0", safetensors.__version__
assert (Path(geoclip.__file__).parent.parent / "geoclip-1.3.0.dist-info").is_dir(), "geoclip 1.3.0 is required"

OUT = Path(__file__).resolve().parents[2] / "g3-align/tests/fixtures/train_step"
MERCATOR_SCALE = 20037508.3427892
FEATURES = 16
BATCH = 8

SCENARIOS = {
    # The paper's optimiser on G3's default objective.
    "paper_image_gps_text": {"variant": "image-gps-text", "learning_rate": 3e-5, "weight_decay": 1e-6, "gamma": 0.87},
    # The IMG+GPS alignment: text head and logit_scale1 receive no gradient and stay put.
    "paper_image_gps": {"variant": "image-gps", "learning_rate": 3e-5, "weight_decay": 1e-6, "gamma": 0.87},
    # Large steps and decay, so that weight decay and the schedule move weights visibly.
    "strong_image_gps_text": {"variant": "image-gps-text", "learning_rate": 1e-2, "weight_decay": 0.1, "gamma": 0.5},
}
BETAS = (0.9, 0.999)
EPSILON = 1e-8


def head(inputs, hidden, outputs):
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs))


class TinyG3(torch.nn.Module):
    """The trainable part of G3's module tree, with G3's attribute names."""

    def __init__(self):
        super().__init__()
        encoder = LocationEncoder(from_pretrained=False)
        for i, sigma in enumerate(encoder.sigma):
            capsule = encoder._modules[f"LocEnc{i}"]
            capsule.capsule[0].b.data = torch.randn(8, 2) * sigma
            capsule.capsule[1] = torch.nn.Linear(16, 24)
            capsule.capsule[3] = torch.nn.Linear(24, 24)
            capsule.capsule[5] = torch.nn.Linear(24, 24)
            capsule.head[0] = torch.nn.Linear(24, 12)
        self.location_encoder = encoder
        self.logit_scale1 = torch.nn.Parameter(torch.tensor(3.99))
        self.logit_scale2 = torch.nn.Parameter(torch.tensor(3.99))
        self.logit_scale3 = torch.nn.Parameter(torch.tensor(3.99))
        self.vision_projection_else_1 = head(FEATURES, FEATURES, FEATURES)
        self.text_projection_else = head(FEATURES, FEATURES, FEATURES)
        self.vision_projection_else_2 = head(FEATURES, FEATURES, FEATURES)
        self.location_projection_else = head(12, 12, FEATURES)

    def locations(self, mercator):
        # G3's CustomLocationEncoder: zeros, then each capsule added in turn.
        features = torch.zeros(mercator.shape[0], 12)
        for i in range(self.location_encoder.n):
            features += self.location_encoder._modules[f"LocEnc{i}"](mercator)
        return features

    def forward(self, image, text, mercator, variant):
        def normalise(x):
            return x / x.norm(p=2, dim=-1, keepdim=True)

        def clip_loss(logits):
            labels = torch.arange(len(logits))
            ce = torch.nn.functional.cross_entropy
            return (ce(logits, labels) + ce(logits.t(), labels)) / 2.0

        image_gps = normalise(self.vision_projection_else_2(image))
        location = normalise(self.location_projection_else(self.locations(mercator)))
        gps_term = clip_loss(torch.matmul(location, image_gps.t()) * self.logit_scale2.exp())
        if variant == "image-gps":
            return gps_term, torch.zeros(()), gps_term
        image_text = normalise(self.vision_projection_else_1(image))
        text = normalise(self.text_projection_else(text))
        text_term = clip_loss(torch.matmul(text, image_text.t()) * self.logit_scale1.exp())
        return text_term + gps_term, text_term, gps_term


def mercator_input(coordinates):
    """G3's encoder input: degrees -> pyproj EPSG:4326 -> 3857 (float64) -> float32 [y, x] / scale."""
    lat = coordinates[:, 0].astype(np.float64)
    lon = coordinates[:, 1].astype(np.float64)
    transformer = pyproj.Transformer.from_proj(pyproj.Proj("epsg:4326"), pyproj.Proj("epsg:3857"), always_xy=True)
    x, y = transformer.transform(lon, lat)
    return torch.tensor(np.stack([y, x], axis=1), dtype=torch.float32) / MERCATOR_SCALE


def batches():
    generator = torch.Generator().manual_seed(11)
    made = []
    for _ in range(2):
        lat = torch.rand(BATCH, generator=generator) * 140.0 - 70.0
        lon = torch.rand(BATCH, generator=generator) * 360.0 - 180.0
        coordinates = torch.stack([lat, lon], dim=1).numpy().astype(np.float32)
        made.append({
            # CLIP's projected features are unnormalised, with norms around 10-20.
            "image_features": torch.randn(BATCH, FEATURES, generator=generator) * 3.0,
            "text_features": torch.randn(BATCH, FEATURES, generator=generator) * 3.0,
            "coordinates": torch.from_numpy(coordinates),
            "mercator_input": mercator_input(coordinates),
        })
    return made


def run(initial, data, settings):
    model = TinyG3()
    model.load_state_dict(initial)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings["learning_rate"], betas=BETAS, eps=EPSILON,
                                  weight_decay=settings["weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=settings["gamma"])
    out = {}
    losses, terms = [], []
    for step, batch in enumerate(data):
        optimiser.zero_grad()
        loss, text_term, gps_term = model(batch["image_features"], batch["text_features"],
                                          batch["mercator_input"], settings["variant"])
        loss.backward()
        losses.append(loss.item())
        terms.append([text_term.item(), gps_term.item()])
        if step == 0:
            for name, parameter in model.named_parameters():
                if parameter.grad is not None:
                    out[f"grad.{name}"] = parameter.grad.detach().clone()
        optimiser.step()
        scheduler.step()
        for name, value in model.state_dict().items():
            out[f"step{step + 1}.{name}"] = value.detach().clone()
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    out["loss_terms"] = torch.tensor(terms, dtype=torch.float64)
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    initial = {k: v.detach().clone().contiguous() for k, v in TinyG3().state_dict().items()}
    save_file(initial, OUT / "initial.safetensors")
    data = batches()
    save_file({f"batch{i}.{k}": v.contiguous() for i, b in enumerate(data) for k, v in b.items()},
              OUT / "batches.safetensors")
    for name, settings in SCENARIOS.items():
        out = run(initial, data, settings)
        save_file({k: v.contiguous() for k, v in out.items()}, OUT / f"{name}.safetensors")
        print(name, "losses", out["losses"].tolist())
    described = {name: dict(settings, betas=list(BETAS), epsilon=EPSILON) for name, settings in SCENARIOS.items()}
    (OUT / "scenarios.json").write_text(json.dumps(described, indent=2) + "\n")


if __name__ == "__main__":
    main()
