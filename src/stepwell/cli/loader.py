"""Finding apps from ``APP_REF`` arguments: ``module:attr``, ``path/to/file.py[:attr]``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from stepwell.errors import ConfigError
from stepwell.sdk.app import App


def load_apps(ref: str) -> list[App]:
    """The apps ``ref`` names: one attribute, or every :class:`App` at a module's top level."""
    target, _, attr = ref.partition(":")
    module = _import(target)
    if attr:
        obj = getattr(module, attr, None)
        if not isinstance(obj, App):
            raise ConfigError(f"{ref}: {attr!r} is not a stepwell.App")
        return [obj]
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if not apps:
        raise ConfigError(f"{ref}: no stepwell.App found at the top level of {target}")
    return apps


def _import(target: str) -> object:
    path = Path(target)
    if target.endswith(".py") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{target}: no such file")
        name = f"stepwell_app_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{target}: cannot be imported")
        sys.path.insert(0, str(path.resolve().parent))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ConfigError(f"{target}: cannot import: {exc}") from None
