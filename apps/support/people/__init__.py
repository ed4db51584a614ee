"""The people side: conversations and their states, handoff to an agent, live pages, agents'
suggestions, handoff figures and webhooks.

- :mod:`.handoff`: Human handoff: the changes of a conversation's state, and the agents'
  actions.
- :mod:`.live`: Live conversation pages: one store poll per worker, however many pages are
  open.
- :mod:`.suggestions`: Agents' answers proposed for the knowledge base; nothing enters it
  without approval.
- :mod:`.conversation`: A conversation as its pages and the agents' queue read it: the
  states, the checks every stored text passes, its messages, and where a waiting one stands
  in the queue.
- :mod:`.sessions`: Conversation history, handoff flags and feedback: database only, no
  models needed.
- :mod:`.records`: The database-only side of the support service: sessions, feedback,
  agents' suggestions and handoff figures (no model loads, except that approving a
  suggestion indexes it).
- :mod:`.handoff_stats`: How handoffs go: rate, wait before a person takes over, resolution,
  per intent.
- :mod:`.webhooks`: Conversation transitions posted to a webhook, at least once, retried
  with back-off.
"""
