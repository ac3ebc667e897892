"""What several test modules share: builders of data, models and configs, and how a command is run.

Test modules import from here (``from helpers.images import make_split_folder``), never from each other or
from ``conftest.py``, which holds only fixtures and the session's set-up.
"""
