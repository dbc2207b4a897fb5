"""pix2pix baseline (Isola et al., 2017): U-Net generator, 70x70 PatchGAN on (sketch, image), L1 + adversarial.

Follows the paper and its reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix), sized for
128x128 and a <16 MiB fp16 weights file:

- Generator: encoder-decoder U-Net downsampling to 1x1 (log2(resolution) levels; 7 at 128), 4x4 stride-2
  convs, LeakyReLU(0.2) down / ReLU up, BatchNorm except on the first and the innermost down conv,
  skip connections between mirrored layers, dropout 0.5 in the first three decoder layers (the paper's
  "CD512-CD512-CD512"), tanh output. Channels `ngf * min(2^i, ngf_max_mult)`: the paper's ngf=64 with
  max 8x is 42M parameters at 128 px (84 MB in fp16); the default ngf=32, max 6x is ~6.4M.
- Discriminator: 70x70 PatchGAN C64-C128-C256-C512 (n_layers=3) on the 2-channel (sketch, image)
  pair; 14x14 patch logits at 128 px.
- Loss: BCE-with-logits GAN loss ("vanilla", as in the paper and the reference's pix2pix default;
  "lsgan" is an option) + 100 * L1; the discriminator loss is halved (paper Sec. 3.3).
- Adam lr 2e-4, betas (0.5, 0.999); constant, then linear decay to 0 over the last half of training.
- Data: the same preprocessed slices as cHeartFlow (no resize-and-crop jitter; optional vertical flips).
- Inference: eval mode (BatchNorm running statistics, no dropout), so the output is deterministic.
  The paper keeps dropout and batch statistics at test time; that is not done here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InvalidInputError
from ...training.base import optimizer_step
from ._base import BaselineTrainer, check_common_config


@dataclass
class Pix2PixConfig:
    """Architecture and training of the pix2pix baseline (saved as config.json beside the weights)."""

    sketch_kind: str = "edges"  # "edges" or "labels": the sketch kind the model is trained on
    resolution: int = 128  # square image side; the generator downsamples to 1x1 (log2(resolution) levels)
    ngf: int = 32  # generator channels at the first level (paper: 64)
    ngf_max_mult: int = 6  # generator channels capped at ngf * this (paper: 8); keeps fp16 weights < 16 MiB
    ndf: int = 64  # discriminator channels at the first layer (paper: 64)
    d_layers: int = 3  # PatchGAN stride-2 layers: 3 gives the 70x70 receptive field
    norm: str = "batch"  # "batch" (reference default) or "instance" (what batch size 1 in the paper amounts to)
    dropout: float = 0.5  # dropout in the first `dropout_layers` decoder layers (paper: 0.5)
    dropout_layers: int = 3  # decoder layers with dropout, innermost first (paper: 3)
    gan_mode: str = "vanilla"  # adversarial loss: "vanilla" (BCE with logits, paper) or "lsgan" (least squares)
    lambda_l1: float = 100.0  # weight of the L1 term (paper: 100)
    steps: int = 20_000  # total optimizer steps (each updates D then G)
    batch_size: int = 32  # pairs per step
    lr: float = 2e-4  # Adam learning rate of G and D (paper: 2e-4)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (paper: 0.5, 0.999)
    lr_decay_fraction: float = 0.5  # final fraction of the steps with linear lr decay to 0 (reference: half)
    amp: str = "auto"  # mixed precision: "auto" (bf16 on CUDA, off on CPU), "bf16", "fp16", "off"
    seed: int = 0  # seed of initialization, batches and dropout
    log_every: int = 50  # metrics log interval (steps)
    checkpoint_every: int = 2000  # resumable checkpoint interval (steps)
    augment_flip: bool = False  # random vertical flips of image+sketch pairs (keeps RV/LV side)

    def __post_init__(self) -> None:
        check_common_config(self)
        if self.resolution & (self.resolution - 1):
            raise InvalidInputError(f"pix2pix downsamples to 1x1: resolution must be a power of two, got {self.resolution}")
        if self.norm not in ("batch", "instance"):
            raise InvalidInputError(f"norm must be 'batch' or 'instance', got {self.norm!r}")
        if self.gan_mode not in ("vanilla", "lsgan"):
            raise InvalidInputError(f"gan_mode must be 'vanilla' or 'lsgan', got {self.gan_mode!r}")
        if self.ngf < 1 or self.ndf < 1 or self.ngf_max_mult < 1 or self.d_layers < 1:
            raise InvalidInputError("ngf, ndf, ngf_max_mult and d_layers must be >= 1")
        if not 0.0 <= self.lr_decay_fraction <= 1.0 or not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError("lr_decay_fraction must lie in [0, 1] and dropout in [0, 1)")
        if self.resolution < 2 ** (self.d_layers + 2):
            raise InvalidInputError(f"resolution {self.resolution} is too small for a PatchGAN with d_layers={self.d_layers}")


def _norm(kind: str, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if kind == "batch" else nn.InstanceNorm2d(ch)


class UNetGenerator(nn.Module):
    """pix2pix U-Net G(sketch) -> image, both [B,1,R,R] in [-1,1]; skips concatenate mirrored layers."""

    def __init__(self, cfg: Pix2PixConfig, in_ch: int = 1, out_ch: int = 1):
        super().__init__()
        n = round(math.log2(cfg.resolution))  # levels down to 1x1
        chs = [cfg.ngf * min(2**i, cfg.ngf_max_mult) for i in range(n)]
        bias = cfg.norm == "instance"  # BatchNorm has its own shift (reference: use_bias = InstanceNorm)
        self.down = nn.ModuleList()
        for i in range(n):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_ch if i == 0 else chs[i - 1], chs[i], 4, 2, 1, bias=bias or i in (0, n - 1)))
            if 0 < i < n - 1:
                layers.append(_norm(cfg.norm, chs[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()  # innermost first
        for j, i in enumerate(reversed(range(n))):
            in_c = chs[i] if i == n - 1 else 2 * chs[i]
            if i == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(in_c, out_ch, 4, 2, 1), nn.Tanh()))
                continue
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_c, chs[i - 1], 4, 2, 1, bias=bias), _norm(cfg.norm, chs[i - 1])]
            if j < cfg.dropout_layers and cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        feats = []
        h = sketch
        for down in self.down:
            h = down(h)
            feats.append(h)
        feats.pop()  # the bottleneck is h itself
        for up in self.up:
            h = up(h)
            if feats:
                h = torch.cat([feats.pop(), h], dim=1)
        return h


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN D(sketch, image) -> patch logits [B,1,h,w] (14x14 at 128 px)."""

    def __init__(self, cfg: Pix2PixConfig, in_ch: int = 2):
        super().__init__()
        bias = cfg.norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_ch, cfg.ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = cfg.ndf
        for k in range(1, cfg.d_layers + 1):
            out = cfg.ndf * min(2**k, 8)
            stride = 2 if k < cfg.d_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=bias), _norm(cfg.norm, out), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, sketch: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([sketch, image], dim=1))


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Reference init: conv weights N(0, 0.02), biases 0, norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def build_generator(cfg: Pix2PixConfig) -> UNetGenerator:
    """A freshly initialized generator."""
    g = UNetGenerator(cfg)
    init_weights(g)
    return g


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """Adversarial loss of patch logits against an all-real or all-fake target (computed in fp32)."""
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


@dataclass
class Pix2PixStep:
    """What one pix2pix step (D update, then G update) did."""

    step: int  # the step number after this update (1-based)
    loss: float  # generator loss: g_gan + lambda_l1 * l1
    l1: float  # mean |G(sketch) - image| (unweighted, images in [-1, 1])
    g_gan: float  # adversarial term of the generator loss
    d_loss: float  # discriminator loss: (real + fake) / 2
    d_real: float  # mean D output on real pairs (sigmoid probability for vanilla, raw for lsgan)
    d_fake: float  # mean D output on generated pairs
    lr: float  # learning rate used


class Pix2PixTrainer(BaselineTrainer):
    """pix2pix on (sketch, image) pairs; model.safetensors holds the generator."""

    kind = "pix2pix"
    StepResult = Pix2PixStep

    def build(self) -> None:
        cfg = self.cfg
        self.G = build_generator(cfg).to(self.device).train()
        self.D = PatchDiscriminator(cfg).to(self.device).train()
        init_weights(self.D)
        self.modules = {"G": self.G, "D": self.D}
        self.optimizers = {"G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=cfg.betas),
                           "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=cfg.betas)}
        self.scalers = {"G": self.make_scaler(self.amp_dtype), "D": self.make_scaler(self.amp_dtype)}

    def inference_module(self) -> nn.Module:
        return self.G

    def lr_at(self, step: int) -> float:
        """Constant lr, then linear decay to 0 over the last lr_decay_fraction of the steps (0-based step)."""
        decay = self.cfg.lr_decay_fraction * self.cfg.steps
        if decay <= 0:
            return self.cfg.lr
        return self.cfg.lr * min(1.0, (self.cfg.steps - step) / decay)

    def train_step(self, x0: torch.Tensor, cond: torch.Tensor) -> Pix2PixStep:
        cfg = self.cfg
        lr = self.lr_at(self.step_count)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        with self.autocast():
            fake = self.G(cond)
        # D: real pairs -> 1, generated pairs -> 0
        self.D.requires_grad_(True)
        with self.autocast():
            pred_real = self.D(cond, x0)
            pred_fake = self.D(cond, fake.detach())
        d_loss = 0.5 * (gan_loss(pred_real, True, cfg.gan_mode) + gan_loss(pred_fake, False, cfg.gan_mode))
        optimizer_step(self.optimizers["D"], self.scalers["D"], d_loss)
        # G: fool D, stay close to the image in L1
        self.D.requires_grad_(False)
        with self.autocast():
            pred = self.D(cond, fake)
        g_gan = gan_loss(pred, True, cfg.gan_mode)
        l1 = (fake.float() - x0).abs().mean()
        g_loss = g_gan + cfg.lambda_l1 * l1
        optimizer_step(self.optimizers["G"], self.scalers["G"], g_loss)
        self.D.requires_grad_(True)
        with torch.no_grad():
            prob = torch.sigmoid if cfg.gan_mode == "vanilla" else (lambda z: z)
            stats = torch.stack([g_loss, l1, g_gan, d_loss, prob(pred_real.float()).mean(), prob(pred_fake.float()).mean()])
        loss, l1_, g_gan_, d_loss_, d_real, d_fake = stats.tolist()  # one device sync per step
        return Pix2PixStep(step=self.step_count + 1, loss=loss, l1=l1_, g_gan=g_gan_, d_loss=d_loss_, d_real=d_real,
                           d_fake=d_fake, lr=lr)

    def postfix(self, res: Pix2PixStep) -> dict[str, str]:
        return {"l1": f"{res.l1:.4f}", "d": f"{res.d_loss:.3f}"}


@torch.no_grad()
def generate(G: UNetGenerator, sketches: torch.Tensor) -> torch.Tensor:
    """Images in [0,1] from sketches in [0,1] (both [B,1,R,R]) with an eval-mode generator."""
    return ((G(sketches * 2 - 1).float() + 1) / 2).clamp(0, 1)
