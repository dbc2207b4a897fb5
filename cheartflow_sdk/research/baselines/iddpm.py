"""iDDPM baseline (Nichol & Dhariwal, 2021) with the sketch concatenated to the noisy input.

- Cosine noise schedule (iDDPM Eq. 17): alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2),
  s = 0.008, betas = 1 - alpha_bar(t)/alpha_bar(t-1) clipped at 0.999; T = 1000 training steps.
- The network predicts epsilon and, with `learn_sigma` (default), the interpolation v of the reverse
  variance between beta_t and the posterior variance (iDDPM Eq. 15); it is trained with the hybrid loss
  L_simple + lambda L_vlb (Eq. 16), lambda = 0.001, the mean held fixed (stop-gradient) in L_vlb. This is
  what lets iDDPM sample with few respaced steps (200 in the paper's Table 1), so it is the default;
  `learn_sigma=False` gives plain epsilon MSE with the fixed "large" variance (beta_t).
- Conditioning by concatenation (Rombach et al., 2022): the network input is [x_t, sketch] (sketch
  mapped to [-1, 1]); the network is our time-conditioned U-Net (models/unet.py) with a 2-channel stem
  and a 1- or 2-channel zero-initialized output conv; it sees the original timestep t as t/T.
- Sampling: ancestral sampling on a respaced schedule of K steps (iDDPM Sec. 4: the strided timesteps of
  `space_timesteps`, betas recomputed from alpha_bar at those steps), x0 predictions clipped to [-1, 1].

The schedule arithmetic is float64 numpy, as in the reference implementation (openai/improved-diffusion).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ...config import ModelConfig, UNetShape
from ...errors import InvalidInputError
from ...models.unet import TimeConditionedUNet
from ...training.base import autocast, ema_update, optimizer_step
from ._base import BaselineTrainer, check_common_config


@dataclass
class IDDPMConfig(UNetShape):
    """Architecture, diffusion and training of the iDDPM baseline (saved as config.json beside the weights)."""

    sketch_kind: str = "edges"  # "edges" or "labels": the sketch kind the model is trained on
    resolution: int = 128  # square image side in pixels
    diffusion_steps: int = 1000  # T, training timesteps (iDDPM: 1000 for the hybrid loss runs; 4000 in some)
    noise_schedule: str = "cosine"  # "cosine" (iDDPM Eq. 17) or "linear" (DDPM, scaled to T)
    cosine_s: float = 0.008  # offset s of the cosine schedule
    learn_sigma: bool = True  # True: hybrid loss with learned variance (iDDPM); False: epsilon MSE, fixed variance beta_t
    vlb_weight: float = 0.001  # lambda of L_hybrid = L_simple + lambda L_vlb (per-timestep term scaled by lambda * T)
    dropout: float = 0.1  # dropout inside residual blocks (iDDPM: 0.1 on small datasets; the other U-Net fields: UNetShape)
    steps: int = 100_000  # total optimizer steps
    batch_size: int = 64  # images per step
    lr: float = 1e-4  # AdamW learning rate (iDDPM: 1e-4)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm (0 disables; iDDPM does not clip)
    ema_decay: float = 0.9995  # EMA of the weights used for sampling (iDDPM: 0.9999 over far longer runs)
    sample_steps: int = 1000  # default respaced sampling steps (the paper's Table 1 uses 200 and 1000)
    clip_denoised: bool = True  # clip the x0 prediction to [-1, 1] while sampling
    amp: str = "auto"  # mixed precision: "auto" (bf16 on CUDA, off on CPU), "bf16", "fp16", "off"
    seed: int = 0  # seed of initialization, batches and noise
    log_every: int = 50  # metrics log interval (steps)
    checkpoint_every: int = 2000  # resumable checkpoint interval (steps)
    augment_flip: bool = False  # random vertical flips of image+sketch pairs (keeps RV/LV side)

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_levels = tuple(int(a) for a in self.attention_levels)
        check_common_config(self)
        if self.noise_schedule not in ("cosine", "linear"):
            raise InvalidInputError(f"noise_schedule must be 'cosine' or 'linear', got {self.noise_schedule!r}")
        if self.diffusion_steps < 2:
            raise InvalidInputError(f"diffusion_steps must be >= 2, got {self.diffusion_steps}")
        if not 2 <= self.sample_steps <= self.diffusion_steps:
            raise InvalidInputError(f"sample_steps must lie in [2, diffusion_steps={self.diffusion_steps}], got {self.sample_steps}")
        self.unet_config()  # validates the U-Net fields

    def unet_config(self) -> ModelConfig:
        """The U-Net fields as the ModelConfig that TimeConditionedUNet is built from."""
        shape = {f.name: getattr(self, f.name) for f in dataclasses.fields(UNetShape)}
        return ModelConfig(sketch_kind=self.sketch_kind, resolution=self.resolution, **shape)


# --- schedules (float64 numpy) -------------------------------------------------------------------

def cosine_alpha_bar(t: np.ndarray | float, T: int, s: float = 0.008) -> np.ndarray:
    """iDDPM Eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2)."""
    f = lambda u: np.cos((np.asarray(u, dtype=np.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    return f(t) / f(0)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """betas_t = min(1 - alpha_bar(t) / alpha_bar(t - 1), max_beta), t = 1..T (iDDPM Sec. 3.2)."""
    t = np.arange(1, T + 1, dtype=np.float64)
    return np.minimum(1 - cosine_alpha_bar(t, T, s) / cosine_alpha_bar(t - 1, T, s), max_beta)


def linear_betas(T: int) -> np.ndarray:
    """DDPM's linear schedule 1e-4..0.02 at T = 1000, scaled for other T (as in iDDPM)."""
    scale = 1000 / T
    return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)


def space_timesteps(num_timesteps: int, section_counts: int | list[int]) -> list[int]:
    """iDDPM respacing: the timesteps kept from the original T, evenly strided within each section.

    `section_counts = [200]` keeps 200 steps spread over [0, T-1] (both ends included); several counts
    split [0, T) into equal sections with that many steps each. Returns the sorted timesteps.
    """
    counts = [section_counts] if isinstance(section_counts, int) else list(section_counts)
    size_per, extra = divmod(num_timesteps, len(counts))
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise InvalidInputError(f"cannot take {count} steps from a section of {size} timesteps (T = {num_timesteps})")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):  # accumulated like the reference, so the rounding matches it exactly
            steps.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(steps))


class GaussianDiffusion:
    """The DDPM forward process, its posterior, the iDDPM reverse-variance parameterization and losses.

    `timestep_map[i]` is the original timestep of step i (identity unless respaced); the network is
    called with `timestep_map[i] / original_T` in [0, 1), which our U-Net embeds as 1000 t.
    """

    def __init__(self, betas: np.ndarray, learn_sigma: bool, timestep_map: np.ndarray | None = None,
                 original_T: int | None = None):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 2 or not ((betas > 0) & (betas <= 1)).all():
            raise InvalidInputError(f"need >= 2 betas in (0, 1], got {len(betas)}")
        self.betas = betas
        self.learn_sigma = learn_sigma
        self.num_timesteps = len(betas)
        self.timestep_map = np.arange(len(betas)) if timestep_map is None else np.asarray(timestep_map)
        self.original_T = original_T or len(betas)
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        # q(x_{t-1} | x_t, x_0) (DDPM Eq. 6-7); the log variance is clipped since it is 0 at t = 0
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        # fixed "large" variance beta_t (first entry the posterior's, as in iDDPM) for learn_sigma=False
        self.fixed_log_variance = np.log(np.append(self.posterior_variance[1], betas[1:]))
        self._cache: dict[tuple[str, torch.device], torch.Tensor] = {}

    @classmethod
    def from_config(cls, cfg: IDDPMConfig) -> GaussianDiffusion:
        T = cfg.diffusion_steps
        betas = cosine_betas(T, cfg.cosine_s) if cfg.noise_schedule == "cosine" else linear_betas(T)
        return cls(betas, cfg.learn_sigma)

    def respaced(self, steps: int) -> GaussianDiffusion:
        """The process on `steps` strided timesteps: betas from alpha_bar at the kept steps (iDDPM Sec. 4)."""
        if not 2 <= steps <= self.num_timesteps:
            raise InvalidInputError(f"steps must lie in [2, {self.num_timesteps}] (the trained timesteps), got {steps}")
        keep = space_timesteps(self.num_timesteps, [steps])
        ac = self.alphas_cumprod[keep]
        betas = 1.0 - ac / np.append(1.0, ac[:-1])
        return GaussianDiffusion(betas, self.learn_sigma, self.timestep_map[keep], self.original_T)

    def _coef(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """getattr(self, name)[t] as float32 [B,1,1,1] on t's device (tables cached per device)."""
        key = (name, t.device)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(getattr(self, name), dtype=torch.float32, device=t.device)
        return self._cache[key][t].view(-1, 1, 1, 1)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """The network's time input for step indices t: original timestep / original T."""
        key = ("_model_time", t.device)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self.timestep_map / self.original_T, dtype=torch.float32, device=t.device)
        return self._cache[key][t]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (DDPM Eq. 4)."""
        return self._coef("sqrt_alphas_cumprod", t) * x0 + self._coef("sqrt_one_minus_alphas_cumprod", t) * noise

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log variance of q(x_{t-1} | x_t, x0)."""
        mean = self._coef("posterior_mean_coef1", t) * x0 + self._coef("posterior_mean_coef2", t) * x_t
        return mean, self._coef("posterior_log_variance_clipped", t).expand_as(x_t)

    def p_mean_variance(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                        clip: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, log variance and x0 prediction of p(x_{t-1} | x_t) from the network output [eps(, v)]."""
        eps = out[:, :1]
        if self.learn_sigma:
            frac = (out[:, 1:2] + 1) / 2  # iDDPM Eq. 15: log var = v log beta_t + (1 - v) log beta~_t
            min_log = self._coef("posterior_log_variance_clipped", t)
            max_log = torch.log(self._coef("betas", t))
            log_var = frac * max_log + (1 - frac) * min_log
        else:
            log_var = self._coef("fixed_log_variance", t).expand_as(x_t)
        pred_x0 = self._coef("sqrt_recip_alphas_cumprod", t) * x_t - self._coef("sqrt_recipm1_alphas_cumprod", t) * eps
        if clip:
            pred_x0 = pred_x0.clamp(-1, 1)
        mean, _ = self.q_posterior(pred_x0, x_t, t)
        return mean, log_var, pred_x0

    def vb_terms_bpd(self, out: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-sample L_t of the variational bound in bits/dim: KL for t > 0, decoder NLL for t = 0."""
        true_mean, true_log_var = self.q_posterior(x0, x_t, t)
        mean, log_var, _ = self.p_mean_variance(out, x_t, t, clip=False)
        kl = normal_kl(true_mean, true_log_var, mean, log_var).flatten(1).mean(1) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).flatten(1).mean(1) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, out: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                        noise: torch.Tensor, vlb_weight: float) -> dict[str, torch.Tensor]:
        """Per-sample losses: mse (L_simple), vb (L_t, 0 without learned sigma) and their hybrid sum."""
        out = out.float()
        mse = (noise - out[:, :1]).pow(2).flatten(1).mean(1)
        if not self.learn_sigma:
            return {"mse": mse, "vb": torch.zeros_like(mse), "loss": mse}
        frozen = torch.cat([out[:, :1].detach(), out[:, 1:2]], dim=1)  # L_vlb trains the variance only
        vb = self.vb_terms_bpd(frozen, x0, x_t, t)
        # lambda L_vlb = lambda * T * E_t[L_t] with t uniform (iDDPM: vb scaled by T / 1000 for lambda = 0.001)
        return {"mse": mse, "vb": vb, "loss": mse + vlb_weight * self.num_timesteps * vb}


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Fast approximation of the standard normal CDF (as in the reference implementation)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of x in [-1, 1] under a Gaussian discretized to 256 bins (the decoder L_0), per element."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


# --- network ------------------------------------------------------------------------------------

class ConcatUNet(nn.Module):
    """eps_theta([x_t, sketch], t) (and v): our TimeConditionedUNet with a 2-channel stem and 1-2 output channels."""

    def __init__(self, cfg: IDDPMConfig):
        super().__init__()
        self.unet = TimeConditionedUNet(cfg.unet_config())
        ch0 = cfg.base_channels * cfg.channel_mult[0]
        self.unet.stem = nn.Conv2d(2, ch0, 3, padding=1)
        self.unet.out_conv = nn.Conv2d(ch0, 2 if cfg.learn_sigma else 1, 3, padding=1)
        nn.init.zeros_(self.unet.out_conv.weight)  # iDDPM zero-initializes the output layer
        nn.init.zeros_(self.unet.out_conv.bias)

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t [B,1,R,R], cond (sketch in [-1,1]) [B,1,R,R], t [B] in [0,1) -> [B,1 or 2,R,R]."""
        return self.unet(torch.cat([x_t, cond.to(x_t.dtype)], dim=1), t)


@dataclass
class IDDPMStep:
    """What one iDDPM optimizer step did."""

    step: int  # the step number after this update (1-based)
    loss: float  # hybrid loss mse + lambda T vb (mse alone without learned sigma)
    mse: float  # epsilon MSE (L_simple)
    vb: float  # variational-bound term L_t in bits/dim (0 without learned sigma)
    grad_norm: float  # global gradient norm before clipping
    lr: float  # learning rate used


class IDDPMTrainer(BaselineTrainer):
    """iDDPM with concatenated sketch conditioning; model.safetensors holds the EMA network."""

    kind = "iddpm"
    StepResult = IDDPMStep

    def build(self) -> None:
        cfg = self.cfg
        self.diffusion = GaussianDiffusion.from_config(cfg)
        self.net = ConcatUNet(cfg).to(self.device).train()
        self.ema = ConcatUNet(cfg).to(self.device).eval().requires_grad_(False)
        self.ema.load_state_dict(self.net.state_dict())
        self.modules = {"net": self.net, "ema": self.ema}
        self.optimizers = {"net": torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, betas=cfg.betas,
                                                    weight_decay=cfg.weight_decay)}
        self.scalers = {"net": self.make_scaler(self.amp_dtype)}

    def inference_module(self) -> nn.Module:
        return self.ema

    def train_step(self, x0: torch.Tensor, cond: torch.Tensor) -> IDDPMStep:
        cfg = self.cfg
        t = torch.randint(0, self.diffusion.num_timesteps, (len(x0),), device=self.device)
        noise = torch.randn_like(x0)
        x_t = self.diffusion.q_sample(x0, t, noise)
        with self.autocast():
            out = self.net(x_t, cond, self.diffusion.model_time(t))
        terms = self.diffusion.training_losses(out, x0, x_t, t, noise, cfg.vlb_weight)
        loss = terms["loss"].mean()
        grad_norm = optimizer_step(self.optimizers["net"], self.scalers["net"], loss, clip=self.net, grad_clip=cfg.grad_clip)
        ema_update(self.ema, self.net, cfg.ema_decay)
        with torch.no_grad():
            stats = torch.stack([loss, terms["mse"].mean(), terms["vb"].mean(), grad_norm.float()]).tolist()  # one sync
        return IDDPMStep(step=self.step_count + 1, loss=stats[0], mse=stats[1], vb=stats[2], grad_norm=stats[3], lr=cfg.lr)

    def postfix(self, res: IDDPMStep) -> dict[str, str]:
        return {"mse": f"{res.mse:.4f}", "vb": f"{res.vb:.3f}"}


# --- sampling -----------------------------------------------------------------------------------

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, model time [B]) -> [eps(, v)]


@torch.no_grad()
def p_sample_loop(model: ModelFn, diffusion: GaussianDiffusion, x_T: torch.Tensor,
                  noise: Callable[[int], torch.Tensor], clip_denoised: bool = True, progress: bool = False) -> torch.Tensor:
    """Ancestral sampling over all steps of `diffusion` (respace it first); returns x_0 in [-1, 1].

    noise(i) gives the N(0, I) draw of step i (same shape as x_T); no noise is added at the last step.
    """
    x = x_T
    for i in tqdm(list(reversed(range(diffusion.num_timesteps))), disable=not progress, desc="iddpm", unit="step"):
        t = torch.full((len(x),), i, device=x.device, dtype=torch.long)
        out = model(x, diffusion.model_time(t)).float()
        mean, log_var, _ = diffusion.p_mean_variance(out, x, t, clip=clip_denoised)
        z = noise(i)
        x = mean + (torch.exp(0.5 * log_var) * z if i > 0 else 0.0)
    return x.clamp(-1, 1)


def sample(net: ConcatUNet, cfg: IDDPMConfig, sketches: torch.Tensor, steps: int, generator: torch.Generator,
           amp: torch.dtype | None = None, progress: bool = False) -> torch.Tensor:
    """Images in [0,1] from sketches in [0,1] ([B,1,R,R]) with `steps` respaced steps; noise from `generator`."""
    diffusion = GaussianDiffusion.from_config(cfg).respaced(steps)
    cond = sketches * 2 - 1
    shape, device = sketches.shape, sketches.device

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return net(x, cond, t)

    x_T = torch.randn(shape, generator=generator, device=device)
    x0 = p_sample_loop(model, diffusion, x_T, lambda i: torch.randn(shape, generator=generator, device=device),
                       clip_denoised=cfg.clip_denoised, progress=progress)
    return (x0 + 1) / 2
