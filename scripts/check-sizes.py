#!/usr/bin/env python3
"""The structure limits, checked in CI: no source file outside tests over 600 lines, no function
outside tests over 100 lines (from its `fn` line to its closing brace).

Test code is a `tests/` folder, a `tests.rs` file, or a `#[cfg(test)]` module inside a file (its
functions are not counted; the file's length still is). Usage: scripts/check-sizes.py [ROOT]
"""
import os
import re
import sys

MAX_FILE, MAX_FN = 600, 100
SKIP_DIRS = {"target", ".git", ".venv", ".venv-bench", ".venv-ml", "node_modules", "tests"}
FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?((const|async|unsafe|extern\s+"[^"]*")\s+)*fn\s+(\w+)')


def code_of(line):
    """The line without string and char literals and comments, for brace counting."""
    line = re.sub(r'r(#*)".*?"\1', '""', line)
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//")[0]


def long_functions(lines):
    """(start line, name, length) of every function over the limit outside #[cfg(test)] modules."""
    found, depth, test_depth, pending_test = [], 0, None, False
    stack = []  # [name, start, depth outside it, whether its body has opened]
    for no, raw in enumerate(lines, 1):
        code = code_of(raw)
        if raw.strip().startswith("#[cfg(test)]"):
            pending_test = True
        m = FN.match(code)
        declaration_only = code.rstrip().endswith(";") and "{" not in code
        if m and test_depth is None and not declaration_only:
            stack.append([m.group(5), no, depth, False])
        for ch in code:
            if ch == "{":
                if pending_test and test_depth is None:
                    test_depth = depth
                pending_test = False
                if stack and stack[-1][2] == depth:
                    stack[-1][3] = True
                depth += 1
            elif ch == "}":
                depth -= 1
                if test_depth is not None and depth == test_depth:
                    test_depth = None
                if stack and stack[-1][2] == depth:
                    name, start, _, _ = stack.pop()
                    if no - start + 1 > MAX_FN:
                        found.append((start, name, no - start + 1))
        if stack and not stack[-1][3] and code.rstrip().endswith(";"):
            stack.pop()  # a declaration without a body (a trait's method)
        if pending_test and code.strip().endswith(";") and "{" not in code:
            pending_test = False  # #[cfg(test)] on a `mod tests;` or a `use`
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            if not f.endswith(".rs") or f == "tests.rs":
                continue
            path = os.path.join(dirpath, f)
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            if len(lines) > MAX_FILE:
                bad.append(f"{path}: {len(lines)} lines (at most {MAX_FILE} outside tests)")
            for start, name, n in long_functions(lines):
                bad.append(f"{path}:{start}: fn {name} is {n} lines (at most {MAX_FN} outside tests)")
    for b in bad:
        print(f"error: {b}")
    if bad:
        return 1
    print(f"sizes: every file outside tests is at most {MAX_FILE} lines, every function at most {MAX_FN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
