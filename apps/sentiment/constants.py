"""Names shared by the app's modules and its CLI, kept free of heavy imports.

The CLI builds its help texts from these at import time, so this module must stay cheap to
import: no SQLAlchemy, numpy or model libraries.
"""

from __future__ import annotations

APP = "sentiment"  # the app's name in the model registry and its store
SENTIMENT_ROLE = "sentiment"  # registry role of the sentiment classifier
TOPIC_ROLE = "topic"  # registry role of the topic classifier paired with it
ALL = "all"  # pseudo-topic covering every record in trends

# A record's identity is (source, id), so both are kept whole: a longer one is refused on
# every path (HTTP 422, a skipped line, a dead letter), never cut to fit its column, since
# two ids that share their first 500 characters would name one document.
MAX_ID_CHARS = 500
MAX_SOURCE_CHARS = 200
