"""CoRe's dtype policy, in one place: what is stored in which dtype, computed in which.

- **Arithmetic** runs in at least float32, on real numbers: a complex leaf is a pair
  of independent real weights (real and imaginary part), as in the reference.
- **State** (``g``, ``h``, ``s``, ``S``) is stored in the leaf's dtype, but at least
  float32: half-precision state would break CoRe (``h ~ G^2`` overflows float16 for
  ``|G| > 256``; bfloat16 cannot hold the small relative changes of ``h`` and ``S``,
  whose decays 0.99 and ``1 - 1/t_hist`` round to 1). ``state_dtype`` may store
  ``g`` and ``s`` of real leaves lower (like optax's ``mu_dtype``).
- **Updates** come back in the leaf's dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_dtype(dtype: jax.typing.DTypeLike) -> jnp.dtype:
  """The real dtype arithmetic on a leaf of ``dtype`` runs in: at least float32."""
  return jnp.promote_types(jnp.finfo(dtype).dtype, jnp.float32)


def state_dtype(dtype: jax.typing.DTypeLike) -> jnp.dtype:
  """The dtype the state of a leaf of ``dtype`` is stored in: at least float32."""
  return jnp.promote_types(dtype, jnp.float32)


def canonical_state_dtype(state_dtype: jax.typing.DTypeLike | None) -> jnp.dtype | None:
  """The ``state_dtype`` option, checked and canonicalised as optax does ``mu_dtype``.

  ``None`` stays ``None``. Without ``jax_enable_x64`` float64 is float32, as it is
  for every JAX array.

  Raises:
    TypeError: if ``state_dtype`` is not a dtype.
    ValueError: if it is not a real floating dtype (``g`` and ``s`` of real leaves
      are real numbers).
  """
  if state_dtype is None:
    return None
  allowed = "a real floating dtype such as jnp.bfloat16 or jnp.float32, or None"
  try:
    dtype = jnp.dtype(state_dtype)
  except TypeError as error:
    raise TypeError(f"state_dtype must be {allowed}, got {state_dtype!r}.") from error
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"state_dtype must be {allowed}, got {dtype} ({state_dtype!r}).")
  return jax.dtypes.canonicalize_dtype(dtype)


def real_dtype(dtype: jax.typing.DTypeLike) -> jnp.dtype:
  """The dtype of :func:`real_view` of an array of ``dtype``."""
  return jnp.finfo(dtype).dtype


def real_view(x: jax.Array) -> jax.Array:
  """A complex array as pairs of real numbers in a new last axis; real arrays as they are."""
  return jnp.stack([x.real, x.imag], axis=-1) if jnp.iscomplexobj(x) else x


def computed(x: jax.Array) -> jax.Array:
  """:func:`real_view` of ``x``, in :func:`compute_dtype`."""
  return real_view(x).astype(compute_dtype(x.dtype))


def stored_like(x: jax.Array, like: jax.Array) -> jax.Array:
  """Undoes :func:`computed`: ``x`` in ``like``'s shape (complex or real) and dtype."""
  if jnp.iscomplexobj(like):
    x = jax.lax.complex(x[..., 0], x[..., 1])
  return x.astype(like.dtype)
