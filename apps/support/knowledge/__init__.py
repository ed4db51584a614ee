"""Knowledge in: company files become screened, indexed entries; the index the bot answers
from, and how every worker follows its changes.

- :mod:`.ingest`: Turn company files into knowledge entries: answer templates, document
  chunks, dialogue pairs.
- :mod:`.chunking`: Split policy documents (Markdown, TXT, HTML) into overlapping chunks
  that keep their title.
- :mod:`.retrieval`: The knowledge index: encoder + two vector stores (questions, document
  chunks) + entry metadata.
- :mod:`.lexical`: A lexical intent classifier: TF-IDF over words and character n-grams,
  logistic regression.
- :mod:`.answer_vectors`: Embeddings of the intents' answer texts: a question can match what
  an answer says.
- :mod:`.index_types`: The plain records of the support knowledge index: an entry's
  metadata, how neighbours are scored, a ranking and an ingest report.
- :mod:`.generation`: The knowledge generation: one counter in the support database, so that
  every worker answers from the same knowledge.
- :mod:`.injection`: Recognise text that gives orders: prompt injection in knowledge and in
  answers.
- :mod:`.quarantine`: Quarantine: passages that read like instructions wait for an admin
  instead of being indexed.
- :mod:`.intent_head`: A linear intent classifier on top of the retriever's embeddings
  (softmax regression).
- :mod:`.changes`: The knowledge part of the support service: what the bot answers from (the
  index, its calibration, the retrieval weights and the stored settings), the changes made
  to it (ingest, answers, calibration, reindex, quarantine decisions) and following the
  changes other processes make.
"""

from aigc_apps.moved import old_module_names

# 0.2's module apps.support.knowledge is this package now; its names live in changes.py.
__getattr__ = old_module_names(__name__, "apps.support.knowledge", ".changes")
