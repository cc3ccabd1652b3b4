"""The Lightning shell: data module, thin module, attack callback, results writer, CLI.

Batch contract between the attack callback and the module
---------------------------------------------------------
A batch is ``{"image": float (N, 3, H, W) in [0, 1], "label": int64 (N, H, W), "name": list[str]}``.
:class:`~benchmark.lightning.attack_callback.AttackCallback` (or, for ``benchmark evaluate``, the
saved-set reader) adds, in ``on_validation_batch_start``,

    batch["adv"]: dict[AdvKey, Tensor]   # (source id, attack name, seed) -> adversarial images, like batch["image"]

and nothing else. :class:`~benchmark.lightning.module.TransferModule` reads ``batch["adv"]`` in
``validation_step``; that key is the only coupling between the two.
"""

from typing import NamedTuple

ADV_KEY = "adv"


class AdvKey(NamedTuple):
    """One attacked condition: ``source`` is the source's id (``SourceInfo.id``), ``attack`` the attack's
    canonical name or label, ``seed`` the run seed of its per-image generators."""

    source: str
    attack: str
    seed: int
