"""The RFC 6902 JSONPatch of a mutation, recorded while the mutation is made (no diff afterwards).

`webhook.mutate` changes a pod by copying the objects on the way to each change; a `Recorder` is
handed down with them and turns every change into operations as it happens. It owns the JSON
Pointer of the object a helper changes (RFC 6901: `~` is written `~0`, `/` is written `~1`) and
the choice of operation:

- `put(holder, key, value)`: `replace` when `holder` had the member (with JSON null too), `add`
  when it did not, nothing when the member already had that value (so a second pass is empty);
- `extend(holder, key, current, items)`: one `add` at `/-` per item when the member was a list,
  else the whole list put as above (absent, or null);
- `enter(key, exists=...)`: the recorder of a member object (or list item). One that did not
  exist in the input (absent or null) is *muted*: what is done inside it is not recorded,
  because `attach` (`attach_item`) records it whole, as one operation, once it is complete. So
  no operation points into an object an earlier operation has not made, and an object the pod
  lacked costs one operation, not one per member.

Operations hold the very values put into the pod (not copies): they are encoded right away.
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def escape(key: str | int) -> str:
    """One reference token of a JSON Pointer (RFC 6901): `~` first, then `/`."""
    token = str(key)
    if "~" in token or "/" in token:  # rare: most keys are returned as they are, uncopied
        token = token.replace("~", "~0").replace("/", "~1")
    return token


class Recorder:
    """The operations of one mutation, and where in the pod the current helper works."""

    __slots__ = ("live", "operations", "pointer")

    def __init__(
        self, operations: list[JsonDict] | None = None, pointer: str = "", *, live: bool = True
    ) -> None:
        self.operations: list[JsonDict] = [] if operations is None else operations
        self.pointer = pointer  # of the object this recorder records changes to; "" the pod's
        self.live = live

    def enter(self, key: str | int, *, exists: bool) -> Recorder:
        """The recorder of the member `key` of this object; muted unless the member `exists` as
        an object or list in the input (and this recorder is live)."""
        if not (self.live and exists):
            return MUTED  # records nothing, so needs no pointer of its own
        return Recorder(self.operations, self.pointer + "/" + escape(key))

    def put(self, holder: JsonDict, key: str, value: Any) -> None:
        """`holder[key] = value`, recorded."""
        if self.live:
            if key not in holder:
                self.operations.append({"op": "add", "path": self._path(key), "value": value})
            elif holder[key] != value:
                self.operations.append({"op": "replace", "path": self._path(key), "value": value})
        holder[key] = value

    def extend(self, holder: JsonDict, key: str, current: list[Any], items: list[Any]) -> None:
        """`holder[key] = current + items`, where `current` is what `holder[key]` held (a list,
        or [] for absent or null); appended item by item when it was a list."""
        if isinstance(holder.get(key), list):
            if self.live:
                end = self._path(key) + "/-"
                self.operations.extend({"op": "add", "path": end, "value": i} for i in items)
            holder[key] = [*current, *items]
        else:
            self.put(holder, key, [*current, *items])

    def attach(self, holder: JsonDict, key: str, value: Any, inner: Recorder) -> None:
        """`holder[key] = value`, an object changed through `inner` (this recorder's `enter`):
        recorded whole when `inner` was muted, since nothing inside it was."""
        if inner.live:
            holder[key] = value
        else:
            self.put(holder, key, value)

    def attach_item(self, holder: list[Any], index: int, value: Any, inner: Recorder) -> None:
        """`attach` for an item the list `holder` has: a `replace` when recorded whole."""
        if self.live and not inner.live and holder[index] != value:
            self.operations.append({"op": "replace", "path": self._path(index), "value": value})
        holder[index] = value

    def _path(self, key: str | int) -> str:
        return self.pointer + "/" + escape(key)


MUTED = Recorder(live=False)  # inside an object the pod lacked: the one who attaches it records
