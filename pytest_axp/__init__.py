"""pytest-axp: AXP agent experiments as pytest suites.

The public surface is small and loads nothing heavy: the plugin module is registered
through the `pytest11` entry point, and everything else is imported where it is used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
