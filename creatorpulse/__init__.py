"""CreatorPulse: real-time influencer engagement analytics.

One import namespace for the whole project. The core (settings, the observation record, topics,
the local stack and the command line) lives here; the system's parts live in the top-level folders
of the repository and are imported as ``creatorpulse.sources``, ``creatorpulse.jobs``,
``creatorpulse.sinks`` and ``creatorpulse.graphql``.

An installed wheel holds those folders inside this package. In a source checkout they are
siblings of this folder, so the checkout's root joins this package's search path. ``graphql/``
has no ``__init__.py`` on purpose: a regular package there would shadow graphql-core for anyone
who runs Python from the repository root.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "setup.cfg").is_file() and (_checkout / "jobs").is_dir():
    __path__.append(str(_checkout))
