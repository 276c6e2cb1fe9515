"""Changing an environment's variables in place (Daytona's update_env): the rule that
turns `set`/`unset` into the variables in force and the names every later process
must not inherit. A container keeps the environment it was created with (the agent
hands it to each child), so removing a variable from the record alone would not
remove it from processes: the removed names are kept with the record."""

import re
from dataclasses import dataclass

from sandbay.domain.environments import MAX_ENV_VARS
from sandbay.domain.errors import InvalidRequest

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
#: Names kept as unset at most (each process spawn carries them).
MAX_UNSET = 4 * MAX_ENV_VARS


@dataclass(frozen=True, slots=True)
class VariableChange:
    """The variables in force and the names removed from every later process."""

    env: dict[str, str]
    unset: list[str]


def change_variables(
    env: dict[str, str],
    unset_before: list[str],
    *,
    set_: dict[str, str],
    unset: list[str],
    unset_value_prefix: str | None,
) -> VariableChange:
    """Unset `unset` (and, with a prefix, every variable whose value starts with it
    that `set_` does not name), then set `set_`. A name set again is no longer unset."""
    bad = [name for name in unset if not _NAME.match(name)]
    if bad:
        raise InvalidRequest(f"unset: {bad[0][:40]!r} is not a variable name")
    removed = set(unset)
    if unset_value_prefix:
        removed |= {k for k, v in env.items() if k not in set_ and v.startswith(unset_value_prefix)}
    merged = {k: v for k, v in env.items() if k not in removed}
    merged.update(set_)
    gone = sorted((set(unset_before) | removed) - set(set_))
    if len(gone) > MAX_UNSET:
        raise InvalidRequest(f"at most {MAX_UNSET} variables can be unset")
    return VariableChange(merged, gone)
