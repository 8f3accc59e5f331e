"""Rewriting a saved model file's members: the tests of damaged and older files."""

import json
import zipfile


def rewrite(path, edit_meta=None, drop=None, extra=None, edit_members=None, out=None):
    """Write the model file ``path`` again, to ``out`` (default: ``path`` itself), with its
    metadata edited by ``edit_meta(meta)``, the members ``drop`` left out, the members
    ``extra`` (name -> bytes) added or replaced, then ``edit_members(members)`` applied to the
    name -> bytes mapping. Returns the path written."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["metadata.json"])
    if edit_meta:
        edit_meta(meta)
    members["metadata.json"] = json.dumps(meta).encode()
    for name in drop or ():
        del members[name]
    members.update(extra or {})
    if edit_members:
        edit_members(members)
    out = path if out is None else out
    with zipfile.ZipFile(out, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return out
