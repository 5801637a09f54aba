#!/usr/bin/env python3
"""pipelines/doc_block.py DOC NAME TABLE [PROG]: replace what stands between "<!-- NAME:begin -->"
and "<!-- NAME:end -->" in DOC by the text of the file TABLE, atomically (DOC.tmp, then renamed).
The experiment scripts (forgetting.sh, quality.sh) write their tables into the docs this way, never
by hand. Exit 1 with a message naming DOC when it lacks the markers."""
import os
import sys

if len(sys.argv) not in (4, 5):
    sys.exit("usage: doc_block.py DOC NAME TABLE [PROG]")
doc, name, table_file = sys.argv[1:4]
prog = sys.argv[4] if len(sys.argv) == 5 else "doc_block.py"
table = open(table_file).read()
s = open(doc).read()
b, e = "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name
if b not in s or e not in s or s.index(e) < s.index(b):
    sys.exit("%s: error: %s: no %s ... %s block, expected one to replace" % (prog, doc, b, e))
i, j = s.index(b) + len(b), s.index(e)
with open(doc + ".tmp", "w") as f:
    f.write(s[:i] + "\n" + table + s[j:])
os.replace(doc + ".tmp", doc)
print("%s: updated %s" % (prog, doc), file=sys.stderr)
