"""The filter tenancy_sizing; the sizing itself is plugin_utils/sizing.py."""

from __future__ import annotations

from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import tenancy_sizing

DOCUMENTATION = r"""
name: tenancy_sizing
short_description: Minimum memory of a vLLM tenant (weights + KV cache + reserve)
version_added: "0.1.0"
description:
  - Returns the terms of the minimum memory a tenant's engine needs, from the model's
    config.json when it is readable under O(models_dir), else from a table of known models.
  - Weights are parameters times bytes per parameter of the dtype or quantization; the KV
    cache is max_model_len x concurrency x layers x KV heads x head_dim x 2 x bytes per element.
positional: _input, models_dir
options:
  _input:
    description: A tenant mapping with model, quantization, max_model_len and concurrency.
    type: dict
    required: true
  models_dir:
    description: Directory holding local models (and the Hugging Face cache in .hf).
    type: str
    default: /var/lib/tenancy/models
"""

EXAMPLES = r"""
- name: Show the minimum memory of a tenant
  ansible.builtin.debug:
    msg: "{{ {'model': 'Qwen/Qwen3-VL-8B-Instruct', 'max_model_len': 32768} | tenancy_sizing }}"
"""

RETURN = r"""
_value:
  description: The sizing terms, or known=false when the model's geometry is unknown.
  type: dict
  contains:
    known: {description: Whether the geometry was found, type: bool}
    source: {description: config.json path or "known models table", type: str}
    weights_bytes: {description: Weight memory, type: int}
    kv_bytes_per_token: {description: KV cache bytes per token, type: int}
    kv_bytes: {description: KV cache for max_model_len x concurrency tokens, type: int}
    vision_activation_bytes:
      description:
        - The vision encoder's activation peak for the largest prompt's images (max_images of the largest image
          the processor allows, within max_model_len); 0 for a text model
      type: int
    image_tokens: {description: The image tokens that peak is for, type: int}
    reserve_bytes: {description: Activations and CUDA graphs, type: int}
    context_bytes: {description: The engine process's CUDA context (a GPU's, outside torch's allocations), type: int}
    minimum_bytes: {description: The sum on a GPU (weights + KV + vision + reserve + context), type: int}
"""


class FilterModule:
    """Tenant memory sizing."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_sizing": tenancy_sizing}
