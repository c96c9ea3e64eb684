"""`module_jit`: `eqx.filter_jit` for functions called again and again on one long-lived
module (a deployed policy, the policy an evaluation steps), with the module's partition into
arrays and the rest done once per module instead of on every call."""

import weakref
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.tree_util as jtu


class _Structure:
    """A module's non-array part and the tree structure of its arrays.

    Interned (`_structure`), so modules of equal structure share one object; jit hashes it by
    identity, which costs nothing, where hashing the non-array part itself costs about as much
    as the partition it replaces.
    """

    __slots__ = ("treedef", "static", "__weakref__")

    def __init__(self, treedef, static):
        self.treedef, self.static = treedef, static

    def rebuild(self, leaves: tuple) -> Any:
        return eqx.combine(jtu.tree_unflatten(self.treedef, leaves), self.static)


_STRUCTURES: "weakref.WeakValueDictionary[tuple, _Structure]" = weakref.WeakValueDictionary()
# id(module) -> (weak reference to the module, its structure, its array leaves). An entry lives
# exactly as long as its module: the weak reference's callback removes it.
_PARTITIONS: dict[int, tuple[weakref.ref, _Structure, tuple]] = {}


def _structure(treedef, static) -> _Structure:
    key = (treedef, static)
    structure = _STRUCTURES.get(key)
    if structure is None:
        structure = _STRUCTURES[key] = _Structure(treedef, static)
    return structure


def _partition(module) -> tuple[_Structure, tuple]:
    key = id(module)
    entry = _PARTITIONS.get(key)
    if entry is not None and entry[0]() is module:
        return entry[1], entry[2]
    arrays, static = eqx.partition(module, eqx.is_array)
    leaves, treedef = jtu.tree_flatten(arrays)
    structure, leaves = _structure(treedef, static), tuple(leaves)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        return structure, leaves  # a module built inside a trace dies with it: not kept
    # The callback holds the table itself, not the module global: at interpreter exit the
    # global is cleared before the last modules die.
    partitions = _PARTITIONS
    try:
        ref = weakref.ref(module, lambda _: partitions.pop(key, None))
    except TypeError:  # not weakly referenceable: partitioned on every call, like filter_jit
        return structure, leaves
    _PARTITIONS[key] = (ref, structure, leaves)
    return structure, leaves


class module_jit:
    """`fn(module, *args)` jitted, with `module`'s partition remembered between calls.

    Like `eqx.filter_jit(fn)`, the module's JAX and NumPy arrays are traced and everything
    else in it is static, so modules of one structure share a compile. Unlike it, the module is
    partitioned into arrays and the rest once, on its first call, and not on every call: for a
    small policy on a CPU that partition costs as much as the computation (about 0.15-0.25 ms
    a call). The module must therefore not change after its first call; an `eqx.Module`
    holding JAX arrays cannot (a NumPy leaf changed in place is still seen, as it is passed,
    not copied). A module built inside a trace is partitioned on every call and not kept.

    **Arguments:**

    - `fn`: `fn(module, *args)`; `args` are arrays except those named in `static_argnums`.
    - `static_argnums`: positions in `fn`'s arguments (the module is 0) of the hashable
      arguments to compile for, as `jax.jit`'s.

    Calling it, `call(module, *args)`, gives `fn(module, *args)` computed under `jax.jit`:
    the same traced computation as `eqx.filter_jit(fn)`'s, hence the same bits.
    """

    def __init__(self, fn: Callable, static_argnums: tuple[int, ...] = ()):
        def run(structure: _Structure, leaves: tuple, *args):
            return fn(structure.rebuild(leaves), *args)

        self.__wrapped__ = fn
        self._jitted = jax.jit(run, static_argnums=(0,) + tuple(i + 1 for i in static_argnums))

    def __call__(self, module, *args):
        structure, leaves = _partition(module)
        return self._jitted(structure, leaves, *args)

    def compile(self, module, *args) -> Callable:
        """Ahead of time: `fn` compiled for `module`'s arrays and these arguments' shapes,
        dtypes and static values.

        **Returns:** `run(*dynamic)`, where `dynamic` are `args` without the static ones;
        `run(*dynamic)` equals `call(module, *args)` bit for bit (one traced function, one
        compile with the default options). The module's arrays are moved to the device once.
        Arguments of other shapes, dtypes or types raise a `TypeError`; nothing is compiled
        again.
        """
        structure, leaves = _partition(module)
        leaves = tuple(jax.device_put(leaves))
        compiled = self._jitted.lower(structure, leaves, *args).compile()

        def run(*dynamic):
            return compiled(leaves, *dynamic)

        return run
