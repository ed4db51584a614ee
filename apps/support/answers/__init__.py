"""Answers out: one question's route (template, generated, or a person), the generated answer's
checks (grounding, facts, personal data) and the reply.

- :mod:`.answerer`: The answerer: what the support bot answers one question from, and the
  decision it makes.
- :mod:`.answering`: How the support bot answers one message: the route (template,
  generated, or nobody), the reply, and when a person takes over instead (see
  :mod:`.handoff`).
- :mod:`.reply`: What a reply is made of: the question's clean-up, the decision, the prompt
  and the reply.
- :mod:`.grounding`: Check a generated answer against the passages it cites, sentence by
  sentence.
- :mod:`.facts`: Checkable facts of a text and their normal forms, for the fact check
  (``grounding``).
- :mod:`.calibration`: Calibrated confidence and the handoff threshold, learned from the
  knowledge base alone.
- :mod:`.pii`: Mask personal data (emails, phone numbers, card and account numbers) before
  storing text.
- :mod:`.bot`: Deprecated home of the support bot: :class:`SupportBot` is now
  :class:`SupportService`.
"""

from aigc_apps.moved import old_module_names

# 0.2's module apps.support.answers is this package now; its names live in reply.py.
__getattr__ = old_module_names(__name__, "apps.support.answers", ".reply")
