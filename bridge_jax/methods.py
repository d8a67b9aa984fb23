"""What a method is, defined once: every method is a point of one space (METHOD.md §7).

    method        α                      critic input  encoder  generator objective
    bridge        config.alpha schedule  (x, z)        yes      bridge_loss (ELBO ↔ B_α mix)
    vae           ≡ 1                    (x, z)        yes      bridge_loss = negative ELBO
    adversarial   ≡ 0                    (x, z)        yes      bridge_loss = B_0 (ALI/BiGAN-like)
    fgan          config.alpha schedule  x             no       B_α only
    nsgan         (not used)             x             no       −log D(G(z))
    hybrid        (not used)             x             yes      negative ELBO + β·(−log D)

The train step dispatches on ``objective``; the models on ``critic_input`` and
``encoder``. Methods with the same :func:`step_family` compile to the same step and
differ only in their α path, so they can be members of one vmapped program.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    critic_input: str  # "joint": d(x, z); "x": d(x)
    encoder: bool  # has an encoder q(z|x) and an ELBO term
    objective: str  # "bridge", "bound", "nonsaturating" or "hybrid"
    fixed_alpha: float | None = None  # α ≡ this; None: config.alpha's schedule
    uses_alpha: bool = True  # whether α enters the objective at all


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("bridge", "joint", True, "bridge"),
    Method("vae", "joint", True, "bridge", fixed_alpha=1.0),
    Method("adversarial", "joint", True, "bridge", fixed_alpha=0.0),
    Method("fgan", "x", False, "bound"),
    Method("nsgan", "x", False, "nonsaturating", uses_alpha=False),
    Method("hybrid", "x", True, "hybrid", uses_alpha=False),
)}
METHOD_NAMES = tuple(METHODS)


def get(name: str) -> Method:
    """The method called ``name`` (KeyError naming the valid ones otherwise)."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(METHOD_NAMES)}") from None


def step_family(name: str) -> tuple[str, bool, str]:
    """(critic input, encoder, objective): methods equal here compile to the same step."""
    m = get(name)
    return (m.critic_input, m.encoder, m.objective)
