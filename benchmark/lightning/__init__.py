"""The Lightning shell: data module, thin module, attack callback, results writer, CLI.

Batch contract between the attack callback and the module
---------------------------------------------------------
A batch is ``{"image": float (N, 3, H, W) in [0, 1], "label": int64 (N, H, W), "name": list[str]}``.
:class:`~benchmark.lightning.attack_callback.AttackCallback` adds, in ``on_validation_batch_start``,

    batch["adv"]: dict[str, Tensor]   # canonical attack name -> adversarial images, like batch["image"]

and nothing else. :class:`~benchmark.lightning.module.TransferModule` reads ``batch["adv"]`` in
``validation_step``; that key is the only coupling between the two.
"""

ADV_KEY = "adv"
