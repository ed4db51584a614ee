"""Names shared by the app's modules and its CLI, kept free of heavy imports.

The CLI builds its help texts from these at import time, so this module must stay cheap to
import: no SQLAlchemy, numpy or model libraries.
"""

from __future__ import annotations

APP = "sentiment"  # the app's name in the model registry and its store
SENTIMENT_ROLE = "sentiment"  # registry role of the sentiment classifier
TOPIC_ROLE = "topic"  # registry role of the topic classifier paired with it
ALL = "all"  # pseudo-topic covering every record in trends
