"""Reads a metadata change proposal file with DataHub's own SDK (the `.venv-datahub` of
`.ci/run`) and checks that every proposal is an aspect DataHub knows, valid, and written in
the canonical form the SDK writes itself: read back and written again, it is unchanged. This
is stricter than `datahub check metadata-file`, which accepts an unknown type in a union
(`{"com.linkedin.schema.Bogus": {}}`) as valid.

Usage: python datahub_roundtrip.py FILE  (prints one line per proposal; exit 1 on a mismatch)
"""

import copy
import json
import sys

from datahub.emitter.mcp import MetadataChangeProposalWrapper


def main(path: str) -> int:
    bad = 0
    for i, obj in enumerate(json.load(open(path))):
        # from_obj rewrites its argument: keep the original for the comparison.
        mcp = MetadataChangeProposalWrapper.from_obj(copy.deepcopy(obj))
        name = f"{i} {obj.get('entityType')} {obj.get('aspectName')}"
        if not isinstance(mcp, MetadataChangeProposalWrapper) or not mcp.validate():
            print(f"{name}: not an aspect DataHub knows, or invalid")
            bad += 1
            continue
        back = mcp.to_obj(simplified_structure=True)
        if back != obj:
            print(f"{name}: changes when read back\n  written: {json.dumps(obj)}\n  read:    {json.dumps(back)}")
            bad += 1
        else:
            print(f"{name}: ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
