"""Renamed arguments: the old spelling keeps working for a while, with a warning."""

from __future__ import annotations

import warnings
from typing import Any

# the default of a renamed argument's new name: not passed (Any: it stands in for any type)
UNSET: Any = object()


def renamed(where: str, old: str, old_value, new: str, new_value, default):
    """The value of an argument renamed from `old` to `new`.

    `old_value` is what the caller passed under the old name (None: not
    passed); it is used with a DeprecationWarning. Passing both names is an
    error; passing neither gives `default`.
    """
    if old_value is None:
        return default if new_value is UNSET else new_value
    if new_value is not UNSET:
        raise TypeError(f"{where}: pass {new}= only ({old}= is its old name)")
    warnings.warn(
        f"{where}: {old}= is renamed {new}= (the old name will be removed)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
