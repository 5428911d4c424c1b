"""Shared by the baselines: loading a mapper the way flywheel names it (FILE.py:NAME)."""

import importlib.util
import os
import sys


def load_mapper(spec, **kwargs):
    """`path/to/file.py:Name` → a callable row → iterable of rows (a class is instantiated and
    started once, as flywheel does)."""
    path, name = spec.rsplit(":", 1)
    mod_name = "bench_mapper_" + os.path.basename(path).removesuffix(".py")
    loaded = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(loaded)
    sys.modules[mod_name] = module
    loaded.loader.exec_module(module)
    obj = getattr(module, name)
    # Constructor arguments as flywheel's --mapper-arg gives them: strings, here from
    # BENCH_MAPPER_ARGS="k=v,k2=v2".
    for kv in filter(None, os.environ.get("BENCH_MAPPER_ARGS", "").split(",")):
        k, v = kv.split("=", 1)
        kwargs.setdefault(k, v)
    if isinstance(obj, type):
        obj = obj(**kwargs)
        if hasattr(obj, "start"):
            obj.start()
    return obj


def map_rows(mapper, rows):
    out = []
    for row in rows:
        out.extend(mapper(row))
    return out
