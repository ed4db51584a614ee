"""Quality: evaluation on labelled questions, the handoff threshold's outcomes, and tuning on
the company's own data.

- :mod:`.evaluation`: Offline evaluation of intent matching and handoff on a labelled query
  file.
- :mod:`.tuning`: Fine-tuning on the company's own data: the retriever's encoder and the
  answer generator.
- :mod:`.outcomes`: What the bot does with labelled customer questions, and the handoff
  threshold that keeps wrong answers rare.
"""
