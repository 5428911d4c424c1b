"""The baseline a user would write: read the input with pyarrow and call the mapper in a plain
loop. Prints the output rows as JSON. Usage: expected_rows.py INPUT.parquet MAPPER.py NAME"""

import importlib.util
import inspect
import json
import sys

import pyarrow.parquet as pq


def main():
    path, mapper_file, name = sys.argv[1:4]
    spec = importlib.util.spec_from_file_location("mapper_under_test", mapper_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = getattr(module, name)
    mapper = target() if inspect.isclass(target) else target
    if hasattr(mapper, "start"):
        mapper.start()
    out = []
    for row in pq.read_table(path).to_pylist():
        result = mapper(row)
        if result is None:
            continue
        if isinstance(result, dict):
            result = [result]
        out.extend(result)
    json.dump(out, sys.stdout, default=str)


main()
