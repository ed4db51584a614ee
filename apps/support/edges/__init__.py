"""The edges: the HTTP routes, the pages, the ``aigc support`` commands and the reply schemas
they share.

- :mod:`.api`: ``/v1/support``: the support bot over HTTP (sessions, messages, history,
  feedback, ask).
- :mod:`.agent_api`: ``/v1/support`` routes for agents: the queue, take-over, replies,
  suggestions, stats.
- :mod:`.routers`: Everything the support app serves: the customer routes, the agents'
  routes, the pages.
- :mod:`.pages`: ``/chat`` and ``/agent``: the customer chat page and the agent console
  (static HTML + JS).
- :mod:`.schemas`: What the support bot answers, one pydantic model per output, shared by
  the HTTP API and the CLI's ``--json``: a field has one name and one meaning wherever it is
  printed. Where the API wraps a list in an object (``{"conversations": [...]}``), the CLI
  prints the list of the same items.
- :mod:`.cli`: ``aigc support ...``: ingest knowledge, ask and chat, feedback, fine-tune,
  evaluate.
- :mod:`.agent_cli`: ``aigc support queue | take | reply | release | resolve | suggestions |
  stats | webhook``: the human side of the support bot, from a terminal (database only: no
  model loads, except that approving a suggestion indexes it).
- :mod:`.quarantine_cli`: ``aigc support quarantine [list | approve | reject | scan |
  answers]``: passages held back at ingest because they read like instructions to the
  assistant, and answers held back when sent (see :mod:`.quarantine`).
"""
