"""Long-CLIP checkpoints as Hugging Face ``CLIPModel``s, and 77 -> 248 position stretching.

A Long-CLIP release file (``longclip-B.pt``, ``longclip-L.pt``) is a plain state dict with
OpenAI-CLIP key names plus a second text position table. Its text forward adds
``positional_embedding`` on rows 0-19 and ``positional_embedding_res`` on rows 20-247 (two
masks); that is exactly one 248-row table taking rows 0-19 from the first and 20-247 from the
second, which is what a ``CLIPModel`` holds. Everything else maps one to one (fused attention
projections split in three, projections transposed).
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

from newsimg.errors import InputError

log = logging.getLogger(__name__)

KEEP = 20  # text positions Long-CLIP keeps from CLIP as they are


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pt`` checkpoint, loaded with ``weights_only=True``.

    A pickle that would build anything but tensors and plain containers (and so could run code)
    is refused with the reason, instead of being executed.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(
            f"{path}: refused to load: the checkpoint's pickle asks for more than tensors, so "
            f"loading it could run code (torch.load weights_only=True said: {err})"
        ) from None
    except (RuntimeError, OSError) as err:
        raise InputError(f"{path}: not a readable PyTorch checkpoint: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict of tensors")
    return state


def _need(state: dict[str, torch.Tensor], key: str, ndim: int | None = None) -> torch.Tensor:
    if key not in state:
        raise InputError(f"Long-CLIP checkpoint lacks {key!r}")
    t = state[key]
    if ndim is not None and t.ndim != ndim:
        raise InputError(f"{key!r} has shape {tuple(t.shape)}, expected {ndim} dimensions")
    return t


def _layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}resblocks\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    if not found or found != set(range(len(found))):
        raise InputError(f"checkpoint has no consecutive {prefix}resblocks.N layers")
    return len(found)


def infer_config(state: dict[str, torch.Tensor]) -> CLIPConfig:
    """Every size from tensor shapes, as Long-CLIP's own loader does (B, L or any other)."""
    if "visual.layer1.0.conv1.weight" in state:
        raise InputError("ResNet Long-CLIP/CLIP checkpoints are not supported (ViT only)")
    width = _need(state, "ln_final.weight", 1).shape[0]
    positions = _need(state, "positional_embedding", 2).shape[0]
    vocab = _need(state, "token_embedding.weight", 2).shape[0]
    embed = _need(state, "text_projection", 2).shape[1]
    conv = _need(state, "visual.conv1.weight", 4)
    v_width, patch = conv.shape[0], conv.shape[-1]
    grid = round((_need(state, "visual.positional_embedding", 2).shape[0] - 1) ** 0.5)
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=width,
            intermediate_size=_need(state, "transformer.resblocks.0.mlp.c_fc.weight").shape[0],
            num_hidden_layers=_layers(state, "transformer."),
            num_attention_heads=width // 64,
            max_position_embeddings=positions,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=v_width,
            intermediate_size=_need(state, "visual.transformer.resblocks.0.mlp.c_fc.weight").shape[
                0
            ],
            num_hidden_layers=_layers(state, "visual.transformer."),
            num_attention_heads=v_width // 64,
            image_size=patch * grid,
            patch_size=patch,
        ),
        projection_dim=embed,
    )


# Tensors the original loader casts to float16 before loading (OpenAI's convert_weights):
# conv and linear weights and biases, attention projections, and the two output projections.
_FP16_IN_ORIGINAL = re.compile(
    r"(conv1\.weight|attn\.in_proj_(weight|bias)|attn\.out_proj\.(weight|bias)"
    r"|mlp\.c_(fc|proj)\.(weight|bias))$|^(text_projection|visual\.proj)$"
)


def combined_positions(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The one 248-row table equal to Long-CLIP's two masked tables."""
    pos = _need(state, "positional_embedding", 2)
    res = state.get("positional_embedding_res")
    if res is None:
        return pos  # a plain CLIP checkpoint
    if res.shape != pos.shape:
        raise InputError(
            f"'positional_embedding_res' has shape {tuple(res.shape)}, "
            f"'positional_embedding' {tuple(pos.shape)}"
        )
    return torch.cat([pos[:KEEP], res[KEEP:]])


def _blocks(state: dict[str, torch.Tensor], src: str, dst: str, n: int) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(n):
        s, d = f"{src}resblocks.{i}.", f"{dst}encoder.layers.{i}."
        q, k, v = _need(state, s + "attn.in_proj_weight", 2).chunk(3)
        qb, kb, vb = _need(state, s + "attn.in_proj_bias", 1).chunk(3)
        out |= {
            d + "self_attn.q_proj.weight": q,
            d + "self_attn.k_proj.weight": k,
            d + "self_attn.v_proj.weight": v,
            d + "self_attn.q_proj.bias": qb,
            d + "self_attn.k_proj.bias": kb,
            d + "self_attn.v_proj.bias": vb,
        }
        for a, b in [
            ("attn.out_proj", "self_attn.out_proj"),
            ("ln_1", "layer_norm1"),
            ("ln_2", "layer_norm2"),
            ("mlp.c_fc", "mlp.fc1"),
            ("mlp.c_proj", "mlp.fc2"),
        ]:
            out[d + b + ".weight"] = _need(state, s + a + ".weight")
            out[d + b + ".bias"] = _need(state, s + a + ".bias")
    return out


def to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename, split and transpose OpenAI/Long-CLIP tensors into ``CLIPModel``'s layout."""
    n_text = _layers(state, "transformer.")
    n_vision = _layers(state, "visual.transformer.")
    t, v = "text_model.", "vision_model."
    out = {
        t + "embeddings.token_embedding.weight": state["token_embedding.weight"],
        t + "embeddings.position_embedding.weight": combined_positions(state),
        t + "final_layer_norm.weight": state["ln_final.weight"],
        t + "final_layer_norm.bias": _need(state, "ln_final.bias"),
        "text_projection.weight": state["text_projection"].T,  # x @ P  ==  Linear(weight=P.T)
        v + "embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        v + "embeddings.class_embedding": _need(state, "visual.class_embedding", 1),
        v + "embeddings.position_embedding.weight": state["visual.positional_embedding"],
        v + "pre_layrnorm.weight": _need(state, "visual.ln_pre.weight"),
        v + "pre_layrnorm.bias": _need(state, "visual.ln_pre.bias"),
        v + "post_layernorm.weight": _need(state, "visual.ln_post.weight"),
        v + "post_layernorm.bias": _need(state, "visual.ln_post.bias"),
        "visual_projection.weight": _need(state, "visual.proj", 2).T,
        "logit_scale": _need(state, "logit_scale").reshape(()),
    }
    out |= _blocks(state, "transformer.", t, n_text)
    out |= _blocks(state, "visual.transformer.", v, n_vision)
    return out


def convert(state: dict[str, torch.Tensor], *, original_rounding: bool = False) -> CLIPModel:
    """A float32 ``CLIPModel`` with exactly the checkpoint's text and image features.

    ``original_rounding`` first rounds the tensors that Long-CLIP's loader casts to float16, so
    features match the original's bit for bit rather than the file's full precision.
    """
    state = {k: v.float() for k, v in state.items()}
    if original_rounding:
        state = {
            k: v.half().float() if _FP16_IN_ORIGINAL.search(k) else v for k, v in state.items()
        }
    config = infer_config(state)
    model = CLIPModel(config)
    weights = to_hf_state_dict(state)
    expected = model.state_dict()
    for key, tensor in weights.items():
        if key not in expected:
            raise InputError(f"converted key {key!r} has no place in the model")
        if expected[key].shape != tensor.shape:
            raise InputError(
                f"{key!r}: shape {tuple(tensor.shape)} is inconsistent with the model's "
                f"{tuple(expected[key].shape)} (sizes inferred from the checkpoint)"
            )
    missing = [k for k in expected if k not in weights and not k.endswith("position_ids")]
    if missing:
        raise InputError(f"checkpoint gives no value for {missing[0]!r}")
    model.load_state_dict(weights, strict=False)  # position_ids buffers are rebuilt, not stored
    return model.eval()


def stretch_table(p: torch.Tensor, positions: int = 248) -> torch.Tensor:
    """Long-CLIP's knowledge-preserving stretch of a (77, w) position table to (248, w).

    Rows 0-19 are kept; each later row i becomes 4 rows interpolated towards row i+1; the last
    4 extrapolate the final step.
    """
    n = p.shape[0]
    if KEEP + (n - KEEP) * 4 != positions:
        raise ValueError(f"{n} positions stretch to {KEEP + (n - KEEP) * 4}, not {positions}")
    new = [p[:KEEP]]
    for i in range(KEEP, n - 1):
        new += [(4 - j) / 4 * p[i] + j / 4 * p[i + 1] for j in range(4)]
    step = p[n - 1] - p[n - 2]
    new += [p[n - 1] + k / 4 * step for k in range(1, 5)]
    return torch.cat([new[0], torch.stack(new[1:])])


def stretch(model: CLIPModel, positions: int = 248) -> CLIPModel:
    """A copy of ``model`` whose text encoder reads ``positions`` tokens (Long-CLIP's stretch)."""
    table = model.text_model.embeddings.position_embedding.weight.detach()
    if table.shape[0] == positions:
        return model
    config = CLIPConfig.from_dict(model.config.to_dict())
    config.text_config.max_position_embeddings = positions
    stretched = CLIPModel(config)
    weights = model.state_dict()
    weights["text_model.embeddings.position_embedding.weight"] = stretch_table(table, positions)
    weights = {k: v for k, v in weights.items() if not k.endswith("position_ids")}
    stretched.load_state_dict(weights, strict=False)
    log.info("stretched text positions %d -> %d", table.shape[0], positions)
    return stretched.eval()
